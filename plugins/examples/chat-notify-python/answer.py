"""What the step decides, apart from the host: kept free of WIT imports so
that `python3 -m unittest` can check it."""

import json

FIELDS = ("url", "text")
TRANSIENT = {"timeout", "transport", "unavailable"}


def problems(config, check):
    """Every problem of a config (JSON text) as (field, message); `check`
    checks a template's tokens, raising an error whose `value.message` says
    why."""
    try:
        parsed = json.loads(config)
    except ValueError as error:
        return [("", f"the config is not JSON: {error}")]
    found = [(f"/{key}", f"unknown field `{key}`, expected one of url, text") for key in parsed if key not in FIELDS]
    url, text = parsed.get("url"), parsed.get("text")
    if not isinstance(url, str):
        found.append(("/url", "the webhook URL is required"))
    elif not url.startswith(("https://", "http://")):
        found.append(("/url", "the webhook URL must start with https:// or http://"))
    if not isinstance(text, str):
        found.append(("/text", "the message is required"))
    else:
        try:
            check(text)
        except Exception as error:  # the host's error, whatever its class
            found.append(("/text", getattr(getattr(error, "value", None), "message", str(error))))
    return found


def decide(status=None, headers=(), error=None):
    """The outcome of the post, given the answer's status and headers or
    the host's error as (code, message): ("done", result), ("retry",
    seconds, why) or ("failed", why). A busy or failing chat (429, 5xx) is
    tried again after its Retry-After, else a minute, and so is one that
    could not be reached; anything else fails."""
    if error is not None:
        code, message = error
        return ("retry", 60, message) if code in TRANSIENT else ("failed", message)
    if 200 <= status < 300:
        return ("done", "posted")
    why = f"the chat answered HTTP {status}"
    if status != 429 and status < 500:
        return ("failed", why)
    after = next((value.strip() for name, value in headers if name.lower() == "retry-after"), "")
    return ("retry", min(int(after), 3600) if after.isdigit() else 60, why)
