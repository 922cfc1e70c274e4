"""@TITLE@: a Stepwise step. It renders a message with the contact's tokens
and logs it; make `execute` do your step's work."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log, templates, types

from logic import problems

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message"],
    "properties": {"message": {"type": "string", "description": "What to say, with tokens such as {{contact.first_name}}."}},
}


class Action(exports.Action):
    def describe(self) -> types.Manifest:
        return types.Manifest(
            id="@ID@",
            version="0.1.0",
            kind=types.PluginKind.ACTION,
            title="@TITLE@",
            description="renders a message about the contact and logs it",
            config_schema=json.dumps(SCHEMA),
            channel=None,
            default_activation=types.Activation.AUTOMATIC,
            results=[types.ResultSpec(code="done", title="Done", ends_enrollment=False, outcome=None)],
            capabilities=[types.Capability_RenderTemplate(), types.Capability_Log()],
        )

    def validate_config(self, config: str):
        return [types.ConfigProblem(field=field, message=message) for field, message in problems(config, templates.check)]

    def prepare(self, context, config, subject):
        return types.EngageItem(title="@TITLE@", body="", draft=None)

    def execute(self, context, config, subject):
        try:
            message = templates.render(json.loads(config)["message"])
        except Err as error:
            return types.Outcome_Failed(types.Failure(message=error.value.message, details="null"))
        log.log(log.Level.INFO, message)
        return types.Outcome_Done(types.Done(result="done", output=json.dumps({"message": message})))
