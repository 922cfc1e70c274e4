"""Posts a message about the contact to a chat's incoming webhook (Slack,
Mattermost, Google Chat, a Teams workflow), written in Python against
`stepwise:plugin@0.2.0` and built with componentize-py."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import http, templates, types

from answer import decide, problems

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url", "text"],
    "properties": {
        "url": {"type": "string", "description": "The chat's incoming-webhook URL."},
        "text": {"type": "string", "description": "The message, with tokens such as {{contact.first_name}}."},
    },
}


class Action(exports.Action):
    def describe(self) -> types.Manifest:
        return types.Manifest(
            id="chat-notify-py",
            version="1.0.0",
            kind=types.PluginKind.ACTION,
            title="Post to a chat (Python)",
            description="posts a message about the contact to a chat's incoming webhook",
            config_schema=json.dumps(SCHEMA),
            channel=None,
            default_activation=types.Activation.AUTOMATIC,
            results=[types.ResultSpec(code="posted", title="Posted", ends_enrollment=False, outcome=None)],
            capabilities=[types.Capability_RenderTemplate(), types.Capability_HttpFetch()],
        )

    def validate_config(self, config: str):
        return [types.ConfigProblem(field=field, message=message) for field, message in problems(config, templates.check)]

    def prepare(self, context, config, subject):
        return types.EngageItem(title="Post to a chat", body="", draft=None)

    def execute(self, context, config, subject):
        settings = json.loads(config)
        try:
            body = json.dumps({"text": templates.render(settings["text"])}).encode()
            headers = [("content-type", "application/json"), ("idempotency-key", context.idempotency_key)]
            request = http.Request(method=http.Method.POST, url=settings["url"], headers=headers, body=body, timeout_ms=None)
            answer = http.fetch(request)
            decided = decide(status=answer.status, headers=answer.headers)
        except Err as error:
            decided = decide(error=(error.value.code.name.lower(), error.value.message))
        if decided[0] == "done":
            return types.Outcome_Done(types.Done(result=decided[1], output="null"))
        if decided[0] == "retry":
            return types.Outcome_Retry(types.Retry(after_ms=decided[1] * 1000, reason=decided[2]))
        return types.Outcome_Failed(types.Failure(message=decided[1], details="null"))
