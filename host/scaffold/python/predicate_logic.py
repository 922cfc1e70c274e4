"""What the criterion decides, apart from the host: free of WIT imports,
so that `python3 -m unittest` can check it."""

import json


def at_one_of(email, domains):
    """Whether `email` is at one of `domains`, ignoring case."""
    domain = email.rpartition("@")[2].lower() if "@" in email else ""
    return domain != "" and any(d.strip().lower() == domain for d in domains)


def problems(config):
    """Every problem of a config (JSON text) as (field, message)."""
    try:
        parsed = json.loads(config)
    except ValueError as error:
        return [("", f"the config is not JSON: {error}")]
    domains = parsed.get("domains")
    if not isinstance(domains, list) or not domains:
        return [("/domains", "list at least one domain")]
    return []
