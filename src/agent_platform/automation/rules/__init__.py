"""Rules: named condition trees that triggers and sequence steps refer to as `{"rule": id}`;
their API, and the validation the whole automation API shares."""
