"""What the step decides, apart from the host: free of WIT imports, so
that `python3 -m unittest` can check it."""

import json


def problems(config, check):
    """Every problem of a config (JSON text) as (field, message); `check`
    checks a template's tokens, raising an error whose `value.message`
    says why."""
    try:
        parsed = json.loads(config)
    except ValueError as error:
        return [("", f"the config is not JSON: {error}")]
    found = [(f"/{key}", f"unknown field `{key}`, expected message") for key in parsed if key != "message"]
    message = parsed.get("message")
    if not isinstance(message, str):
        return found + [("/message", "the message is required")]
    try:
        check(message)
    except Exception as error:  # the host's error, whatever its class
        found.append(("/message", getattr(getattr(error, "value", None), "message", str(error))))
    if len(message) > 500:
        found.append(("/message", f"at most 500 characters, not {len(message)}"))
    return found
