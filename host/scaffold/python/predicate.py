"""@TITLE@: a Stepwise criterion. It holds when the contact's email address
is at one of the listed domains; make `evaluate` decide what yours does."""

import json

from wit_world import exports
from wit_world.imports import types

from logic import at_one_of, problems

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["domains"],
    "properties": {"domains": {"type": "array", "items": {"type": "string"}, "description": "Email domains, such as example.com."}},
}


class Predicate(exports.Predicate):
    def describe(self) -> types.Manifest:
        return types.Manifest(
            id="@ID@",
            version="0.1.0",
            kind=types.PluginKind.PREDICATE,
            title="@TITLE@",
            description="holds when the contact's email address is at one of the listed domains",
            config_schema=json.dumps(SCHEMA),
            channel=None,
            default_activation=types.Activation.AUTOMATIC,
            results=[],
            capabilities=[],
        )

    def validate_config(self, config: str):
        return [types.ConfigProblem(field=field, message=message) for field, message in problems(config)]

    def evaluate(self, context, config, subject) -> bool:
        return at_one_of(subject.contact.email or "", json.loads(config).get("domains", []))
