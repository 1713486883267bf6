// The visual rule editor (/app/automation/triggers/…). The condition tree and the actions
// live as JSON in two hidden fields, exactly as the triggers API takes them: this script
// draws them as controls, writes them back on every change, and shows the server's error
// next to the node its path names. Only textContent is ever set from data: no markup.
(() => {
  "use strict";

  const form = document.querySelector("[data-rule-editor]");
  if (!form) {
    return;
  }
  const catalog = JSON.parse(form.dataset.catalog);
  const words = catalog.words;
  const fieldsByName = new Map(catalog.fields.map((field) => [field.name, field]));
  const customPrefix = catalog.custom_field_prefix;
  const conditionsInput = form.querySelector("[data-conditions-json]");
  const actionsInput = form.querySelector("[data-actions-json]");
  const treeRoot = form.querySelector("[data-condition-tree]");
  const actionList = form.querySelector("[data-action-list]");
  const preview = form.querySelector("[data-json-preview]");
  const NO_VALUE = new Set(["is_empty", "is_not_empty"]);
  const LIST_VALUE = new Set(["in", "not_in"]);
  const CUSTOM = "__custom__";

  const parsed = (text, fallback) => {
    try {
      return text.trim() ? JSON.parse(text) : fallback;
    } catch (error) {
      return fallback;
    }
  };

  // The editor's root is always a group; a stored tree that is not one sits inside it.
  let tree = parsed(conditionsInput.value, null);
  if (!tree || !(Array.isArray(tree.all) || Array.isArray(tree.any))) {
    tree = { all: tree ? [tree] : [] };
  }
  let actions = parsed(actionsInput.value, []);
  if (!Array.isArray(actions)) {
    actions = [];
  }

  // --- small DOM helpers ------------------------------------------------------------------

  const element = (tag, attributes = {}, text = "") => {
    const made = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      made.setAttribute(name, value);
    }
    if (text) {
      made.textContent = text;
    }
    return made;
  };

  const button = (label, testId, onClick, extraClass = "") => {
    const made = element("button", { type: "button", class: `button small ${extraClass}`.trim(), "data-testid": testId }, label);
    made.addEventListener("click", onClick);
    return made;
  };

  const select = (label, testId, options, chosen) => {
    const made = element("select", { "aria-label": label, "data-testid": testId });
    for (const option of options) {
      if (option.group) {
        const group = element("optgroup", { label: option.group });
        for (const inner of option.options) {
          group.append(optionOf(inner, chosen));
        }
        made.append(group);
      } else {
        made.append(optionOf(option, chosen));
      }
    }
    return made;
  };

  const optionOf = (option, chosen) => {
    const made = element("option", { value: option.value }, option.label);
    if (option.value === chosen) {
      made.selected = true;
    }
    return made;
  };

  // --- values: what each field type and operator asks for --------------------------------

  const fieldType = (name) => {
    if (fieldsByName.has(name)) {
      return fieldsByName.get(name).type;
    }
    return typeof name === "string" && name.startsWith(customPrefix) ? "any" : "string";
  };

  const valueShape = (type, operator) => {
    if (NO_VALUE.has(operator)) return "none";
    if (operator === "between") return "between";
    if (LIST_VALUE.has(operator)) return "list";
    if (operator === "matches") return "text";
    if (["gt", "gte", "lt", "lte"].includes(operator)) return "number";
    if (type === "boolean") return "boolean";
    if (type === "number") return "number";
    if (type === "any") return "scalar";
    return "text";
  };

  const emptyValue = (shape) => {
    if (shape === "between") return [null, null];
    if (shape === "list") return [];
    if (shape === "boolean") return true;
    return null;
  };

  // A number input's text as a number; text that is no number is sent as it is, so that
  // the server refuses it with its path rather than the editor dropping it silently.
  const numberOf = (text) => {
    const trimmed = String(text).trim();
    if (trimmed === "") return null;
    const number = Number(trimmed);
    return Number.isFinite(number) ? number : trimmed;
  };

  const scalarOf = (text) => {
    const trimmed = String(text).trim();
    const number = Number(trimmed);
    return trimmed !== "" && Number.isFinite(number) ? number : text;
  };

  const listItemOf = (type) => (type === "number" ? numberOf : type === "any" ? scalarOf : (text) => text.trim());

  // --- the condition tree ------------------------------------------------------------------

  const newCondition = () => {
    const field = fieldsByName.has("lead.price") ? "lead.price" : catalog.fields[0].name;
    const operator = catalog.operators[fieldType(field)][0];
    return { field, operator, value: emptyValue(valueShape(fieldType(field), operator)) };
  };

  const groupKind = (node) => (Array.isArray(node.any) ? "any" : "all");

  const renderNode = (node, path, onRemove) => {
    if (node && (Array.isArray(node.all) || Array.isArray(node.any))) {
      return renderGroup(node, path, onRemove);
    }
    if (node && Object.prototype.hasOwnProperty.call(node, "not")) {
      return renderNot(node, path, onRemove);
    }
    if (node && Object.prototype.hasOwnProperty.call(node, "rule")) {
      return renderRule(node, path, onRemove);
    }
    return renderCondition(node, path, onRemove);
  };

  const renderGroup = (node, path, onRemove) => {
    const kind = groupKind(node);
    const box = element("div", { class: "cond-group", "data-path": path, "data-testid": "condition-group" });
    const head = element("div", { class: "cond-head" });
    const kindSelect = select(words.all, "group-kind", [
      { value: "all", label: words.all },
      { value: "any", label: words.any },
    ], kind);
    kindSelect.addEventListener("change", () => {
      const children = node[kind];
      delete node[kind];
      node[kindSelect.value] = children;
      changed(true);
    });
    head.append(kindSelect);
    if (onRemove) {
      head.append(button(words.remove, "remove-node", onRemove, "quiet"));
    }
    box.append(head);
    const children = element("ul", { class: "cond-children" });
    node[kind].forEach((child, index) => {
      const item = element("li");
      item.append(renderNode(child, `${path}.${kind}[${index}]`, () => {
        node[kind].splice(index, 1);
        changed(true);
      }));
      children.append(item);
    });
    box.append(children);
    const adders = element("div", { class: "cond-add" });
    adders.append(
      button(words.add_condition, "add-condition", () => { node[kind].push(newCondition()); changed(true); }),
      button(words.add_group, "add-group", () => { node[kind].push({ any: [newCondition()] }); changed(true); }),
      button(words.add_not, "add-not", () => { node[kind].push({ not: newCondition() }); changed(true); }),
    );
    if (catalog.rules.length) {
      adders.append(button(words.add_rule, "add-rule", () => { node[kind].push({ rule: catalog.rules[0].id }); changed(true); }));
    }
    box.append(adders);
    return box;
  };

  const renderNot = (node, path, onRemove) => {
    const box = element("div", { class: "cond-not", "data-path": path, "data-testid": "condition-not" });
    const head = element("div", { class: "cond-head" });
    head.append(element("span", { class: "cond-label" }, words.not));
    head.append(button(words.remove, "remove-node", onRemove, "quiet"));
    box.append(head);
    box.append(renderNode(node.not, `${path}.not`, () => {
      node.not = newCondition();
      changed(true);
    }));
    return box;
  };

  const renderRule = (node, path, onRemove) => {
    const box = element("div", { class: "cond-compare", "data-path": path, "data-testid": "condition-rule" });
    box.append(element("span", { class: "cond-label" }, words.saved_rule));
    const ruleSelect = select(words.saved_rule, "rule-choice",
      catalog.rules.map((rule) => ({ value: rule.id, label: rule.name })), node.rule);
    ruleSelect.addEventListener("change", () => { node.rule = ruleSelect.value; changed(false); });
    box.append(ruleSelect, button(words.remove, "remove-node", onRemove, "quiet"));
    return box;
  };

  const fieldOptions = () => {
    const groups = new Map();
    for (const field of catalog.fields) {
      if (!groups.has(field.group)) groups.set(field.group, []);
      groups.get(field.group).push({ value: field.name, label: `${field.name} — ${field.label}` });
    }
    const options = [...groups.entries()].map(([group, options]) => ({ group: catalog.groups[group] || group, options }));
    options.push({ value: CUSTOM, label: words.custom_field });
    return options;
  };

  const renderCondition = (node, path, onRemove) => {
    const box = element("div", { class: "cond-compare", "data-path": path, "data-testid": "condition" });
    const isCustom = typeof node.field === "string" && node.field.startsWith(customPrefix);
    const fieldSelect = select(words.field, "condition-field", fieldOptions(), isCustom ? CUSTOM : node.field);
    box.append(fieldSelect);
    const type = fieldType(node.field);

    const resetValue = () => {
      const allowed = catalog.operators[fieldType(node.field)];
      if (!allowed.includes(node.operator)) node.operator = allowed[0];
      node.value = emptyValue(valueShape(fieldType(node.field), node.operator));
      changed(true);
    };
    fieldSelect.addEventListener("change", () => {
      node.field = fieldSelect.value === CUSTOM ? customPrefix : fieldSelect.value;
      resetValue();
    });
    if (isCustom) {
      const code = element("input", { "aria-label": words.custom_field_code, "data-testid": "custom-field-code", class: "cond-code" });
      code.value = node.field.slice(customPrefix.length);
      code.addEventListener("input", () => { node.field = customPrefix + code.value.trim(); changed(false); });
      box.append(code);
    }

    const operators = catalog.operators[type] || catalog.operators.string;
    const operatorSelect = select(words.operator, "condition-operator",
      operators.map((operator) => ({ value: operator, label: catalog.operator_labels[operator] })), node.operator);
    operatorSelect.addEventListener("change", () => {
      const before = valueShape(type, node.operator);
      node.operator = operatorSelect.value;
      if (valueShape(type, node.operator) !== before) {
        node.value = emptyValue(valueShape(type, node.operator));
      }
      changed(true);
    });
    box.append(operatorSelect);
    box.append(...valueInputs(node, type));
    box.append(button(words.remove, "remove-node", onRemove, "quiet"));
    return box;
  };

  const valueInputs = (node, type) => {
    const shape = valueShape(type, node.operator);
    if (shape === "none") {
      delete node.value;
      return [];
    }
    if (shape === "between") {
      const range = Array.isArray(node.value) ? node.value : [null, null];
      node.value = range;
      return [0, 1].map((index) => {
        const input = element("input", {
          type: "number", step: "any", class: "cond-value",
          "aria-label": index === 0 ? words.value_low : words.value_high,
          "data-testid": index === 0 ? "condition-value-low" : "condition-value-high",
        });
        input.value = range[index] ?? "";
        input.addEventListener("input", () => { node.value[index] = numberOf(input.value); changed(false); });
        return input;
      });
    }
    if (shape === "boolean") {
      const choice = select(words.value, "condition-value", [
        { value: "true", label: words.yes },
        { value: "false", label: words.no },
      ], node.value === false ? "false" : "true");
      node.value = choice.value === "true";
      choice.addEventListener("change", () => { node.value = choice.value === "true"; changed(false); });
      return [choice];
    }
    if (shape === "list") {
      const input = element("input", { class: "cond-value wide", "aria-label": words.value, "data-testid": "condition-value", placeholder: words.list_hint });
      input.value = Array.isArray(node.value) ? node.value.join(", ") : "";
      const itemOf = listItemOf(type);
      input.addEventListener("input", () => {
        node.value = input.value.split(",").filter((item) => item.trim() !== "").map(itemOf);
        changed(false);
      });
      return [input];
    }
    const input = element("input", {
      class: "cond-value", "aria-label": words.value, "data-testid": "condition-value",
      ...(shape === "number" ? { type: "number", step: "any" } : {}),
    });
    input.value = node.value ?? "";
    input.addEventListener("input", () => {
      node.value = shape === "number" ? numberOf(input.value) : shape === "scalar" ? scalarOf(input.value) : input.value;
      changed(false);
    });
    return [input];
  };

  // --- actions -----------------------------------------------------------------------------

  const actionTypes = Object.keys(catalog.actions);

  const renderActions = () => {
    actionList.replaceChildren();
    actions.forEach((action, index) => {
      const spec = catalog.actions[action.type] || catalog.actions[actionTypes[0]];
      const item = element("li", { class: "action", "data-path": `actions[${index}]`, "data-testid": "action" });
      const head = element("div", { class: "cond-head" });
      const typeSelect = select(words.action, "action-type",
        actionTypes.map((type) => ({ value: type, label: catalog.actions[type].label })), action.type);
      typeSelect.addEventListener("change", () => {
        const kept = { type: typeSelect.value };
        for (const field of catalog.actions[typeSelect.value].fields) {
          if (field.name in action) kept[field.name] = action[field.name];
        }
        actions[index] = kept;
        changed(true);
      });
      head.append(typeSelect, button(words.remove, "remove-action", () => { actions.splice(index, 1); changed(true); }, "quiet"));
      item.append(head);
      const fields = element("div", { class: "action-fields" });
      for (const field of spec.fields) {
        fields.append(actionField(action, field));
      }
      item.append(fields);
      actionList.append(item);
    });
  };

  const actionField = (action, field) => {
    const label = element("label", { class: "action-field", "data-path-suffix": field.name });
    label.append(element("span", {}, field.label + (field.required ? " *" : "")));
    let input;
    const current = action[field.name];
    if (field.input === "textarea" || field.input === "json") {
      input = element("textarea", { rows: "2" });
      input.value = field.input === "json" ? (current === undefined ? "" : typeof current === "string" ? current : JSON.stringify(current)) : (current ?? "");
    } else if (field.input === "sequence") {
      input = select(field.label, `action-${field.name}`, [
        { value: "", label: words.no_sequence },
        ...catalog.sequences.map((sequence) => ({ value: sequence.id, label: sequence.name })),
      ], current ?? "");
    } else {
      input = element("input", field.input === "number" ? { type: "number", step: "1" } : {});
      input.value = current ?? "";
    }
    input.setAttribute("data-testid", `action-${field.name}`);
    const store = () => {
      const text = input.value;
      if (text.trim() === "" && field.input !== "textarea" && field.input !== "text") {
        delete action[field.name];
      } else if (field.input === "number") {
        action[field.name] = numberOf(text);
      } else if (field.input === "field_ref") {
        action[field.name] = /^\d+$/.test(text.trim()) ? Number(text.trim()) : text;
      } else if (field.input === "json") {
        action[field.name] = parsed(text, text);
      } else if (text === "" && !field.required) {
        delete action[field.name];
      } else {
        action[field.name] = text;
      }
      changed(false);
    };
    input.addEventListener(input.tagName === "SELECT" ? "change" : "input", store);
    label.append(input);
    return label;
  };

  form.querySelector("[data-add-action]").addEventListener("click", () => {
    const type = actionTypes.includes("add_tag") ? "add_tag" : actionTypes[0];
    actions.push({ type });
    changed(true);
  });

  // --- keeping the hidden fields, the preview and the errors in step -------------------------

  const serialised = () => {
    const kind = groupKind(tree);
    return { conditions: tree[kind].length ? tree : null, actions };
  };

  const changed = (redraw) => {
    const { conditions } = serialised();
    conditionsInput.value = conditions ? JSON.stringify(conditions) : "";
    actionsInput.value = JSON.stringify(actions);
    if (preview) {
      preview.textContent = JSON.stringify({ conditions, actions }, null, 2);
    }
    if (redraw) {
      draw();
    }
  };

  const draw = () => {
    treeRoot.replaceChildren(renderGroup(tree, "conditions", null));
    renderActions();
  };

  // The node whose path is the longest start of the error's path holds the error.
  const showError = (path, message) => {
    for (const old of form.querySelectorAll("[data-node-error]")) old.remove();
    if (!message) return;
    let best = null;
    for (const candidate of form.querySelectorAll("[data-path]")) {
      const nodePath = candidate.dataset.path;
      const fits = path === nodePath || path.startsWith(`${nodePath}.`) || path.startsWith(`${nodePath}[`);
      if (fits && (!best || nodePath.length > best.dataset.path.length)) best = candidate;
    }
    if (!best) return;
    const note = element("p", { class: "node-error", role: "alert", "data-node-error": "", "data-testid": "node-error" });
    note.append(element("code", {}, path), document.createTextNode(`: ${message}`));
    best.append(note);
  };

  const eventType = form.querySelector("[data-event-type]");
  const showEventParameters = () => {
    for (const parameter of form.querySelectorAll("[data-event-param]")) {
      const types = parameter.dataset.eventParam.split(" ");
      parameter.classList.toggle("is-hidden", !types.includes(eventType.value));
    }
  };
  eventType.addEventListener("change", showEventParameters);

  document.body.addEventListener("htmx:afterSwap", (event) => {
    const refused = event.target.querySelector("[data-testid='dry-run-error']");
    showError(refused ? refused.dataset.errorPath : "", refused ? refused.dataset.errorMessage : "");
  });

  for (const confirmed of document.querySelectorAll("[data-confirm]")) {
    confirmed.addEventListener("click", (event) => {
      if (!window.confirm(confirmed.dataset.confirm)) event.preventDefault();
    });
  }

  showEventParameters();
  changed(true);
  const testRefused = form.querySelector("[data-testid='dry-run-error']");
  if (form.dataset.errorMessage) {
    showError(form.dataset.errorPath, form.dataset.errorMessage);
  } else if (testRefused) {
    showError(testRefused.dataset.errorPath, testRefused.dataset.errorMessage);
  }
})();
