"""automation.templates: variables are the catalog's fields; anything else is refused when saved,
with its place; rendering fills in facts, and a fact not known leaves no trace."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_platform.automation.engine import RuleError
from agent_platform.automation.templates import check_template, render, template_variables


def test_the_variables_of_a_template_are_named_with_or_without_spaces() -> None:
    template = "Hi {{lead.name}}, about {{ lead.custom_fields.UTM_SOURCE }} ({{  lead.name  }})"
    assert template_variables(template) == {"lead.name", "lead.custom_fields.UTM_SOURCE"}
    assert template_variables("no variables { here }") == frozenset()


@pytest.mark.parametrize(
    "template",
    [
        "Hello, {{ lead.name }}!",
        "{{ contact.phone }} / {{ contact.email }} / {{ lead.tags }}",
        "Field 123: {{ lead.custom_fields.123 }}, code: {{lead.custom_fields.UTM_SOURCE}}",
        "{{ event.to_status_id }} at {{ time.hour }}",
        "plain text with { single } braces",
        "",
    ],
)
def test_templates_of_known_fields_are_accepted(template: str) -> None:
    check_template(template, "actions[0].text")


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Hi {{ lead.nmae }}", "unknown variable {{ lead.nmae }}; did you mean {{ lead.name }}?"),
        ("{{ secret_key }}", "unknown variable {{ secret_key }}"),
        ("{{ lead.custom_fields. }}", "unknown variable {{ lead.custom_fields. }}"),
        ("Hi {{ }}", "an empty variable {{ }}"),
        ("Hi {{ lead.name }", "a '{{' is not closed by '}}'"),
        ("Hi {{ {{ lead.name }} }}", "a '{{' is not closed by '}}'"),
        ("Hi lead.name }}", "a '}}' closes no '{{'"),
    ],
)
def test_unknown_variables_and_stray_braces_are_refused_at_their_place(
    template: str, message: str
) -> None:
    with pytest.raises(RuleError) as refused:
        check_template(template, "actions[3].text")
    assert refused.value.path == "actions[3].text"
    assert refused.value.message.startswith(message)


def test_rendering_fills_in_the_facts() -> None:
    facts = {
        "lead.name": "Deal #7",
        "lead.price": 1500.0,
        "lead.tags": ["vip", "spring"],
        "time.within_working_hours": False,
        "contact.id": 42,
        "lead.custom_fields.UTM_SOURCE": "google",
    }
    template = (
        "{{ lead.name }}: {{lead.price}} ({{ lead.tags }}) open={{ time.within_working_hours }} "
        "contact {{ contact.id }} from {{ lead.custom_fields.UTM_SOURCE }}"
    )
    assert render(template, facts) == ("Deal #7: 1500 (vip, spring) open=no contact 42 from google")


def test_a_fact_not_known_renders_as_nothing() -> None:
    assert render("Hi {{ contact.name }}!", {"contact.name": None}) == "Hi !"
    assert render("Hi {{ contact.name }}!", {}) == "Hi !"


def test_a_rendered_value_is_not_rendered_again() -> None:
    assert render("{{ message.text }}", {"message.text": "{{ lead.name }}", "lead.name": "x"}) == (
        "{{ lead.name }}"
    )


@given(st.text().filter(lambda text: "{{" not in text and "}}" not in text))
def test_text_without_variables_is_accepted_and_renders_unchanged(text: str) -> None:
    check_template(text, "text")
    assert render(text, {"lead.name": "x"}) == text
