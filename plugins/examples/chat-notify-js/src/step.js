// Posts a message about the contact to a chat's incoming webhook (Slack,
// Mattermost, Google Chat, a Teams workflow), written in JavaScript against
// `stepwise:plugin@0.2.0` and built with componentize-js.

import { check, render } from 'stepwise:plugin/templates@0.2.0';
import { fetch } from 'stepwise:plugin/http@0.2.0';
import { outcome, problems } from './answer.js';

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['url', 'text'],
  properties: {
    url: { type: 'string', description: "The chat's incoming-webhook URL." },
    text: { type: 'string', description: 'The message, with tokens such as {{contact.first_name}}.' },
  },
};

export const action = {
  describe() {
    return {
      id: 'chat-notify-js',
      version: '1.0.0',
      kind: 'action',
      title: 'Post to a chat (JavaScript)',
      description: "posts a message about the contact to a chat's incoming webhook",
      configSchema: JSON.stringify(SCHEMA),
      channel: undefined,
      defaultActivation: 'automatic',
      results: [{ code: 'posted', title: 'Posted', endsEnrollment: false, outcome: undefined }],
      capabilities: [{ tag: 'render-template' }, { tag: 'http-fetch' }],
    };
  },

  validateConfig(config) {
    return problems(config, check);
  },

  prepare() {
    return { title: 'Post to a chat', body: '', draft: undefined };
  },

  execute(context, config) {
    const { url, text } = JSON.parse(config);
    try {
      const body = new TextEncoder().encode(JSON.stringify({ text: render(text) }));
      const headers = [
        ['content-type', 'application/json'],
        ['idempotency-key', context.idempotencyKey],
      ];
      return outcome({ answer: fetch({ method: 'post', url, headers, body, timeoutMs: undefined }) });
    } catch (error) {
      return outcome({ error: error.payload ?? { code: 'invalid', message: String(error) } });
    }
  },
};
