// @TITLE@: a Stepwise step. It renders a message with the contact's tokens
// and logs it; make `execute` do your step's work.

import { log } from 'stepwise:plugin/log@0.2.0';
import { check, render } from 'stepwise:plugin/templates@0.2.0';
import { problems } from './logic.js';

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['message'],
  properties: { message: { type: 'string', description: 'What to say, with tokens such as {{contact.first_name}}.' } },
};

export const action = {
  describe() {
    return {
      id: '@ID@',
      version: '0.1.0',
      kind: 'action',
      title: '@TITLE@',
      description: 'renders a message about the contact and logs it',
      configSchema: JSON.stringify(SCHEMA),
      channel: undefined,
      defaultActivation: 'automatic',
      results: [{ code: 'done', title: 'Done', endsEnrollment: false, outcome: undefined }],
      capabilities: [{ tag: 'render-template' }, { tag: 'log' }],
    };
  },

  validateConfig(config) {
    return problems(config, check);
  },

  prepare() {
    return { title: '@TITLE@', body: '', draft: undefined };
  },

  execute(context, config) {
    try {
      const message = render(JSON.parse(config).message);
      log('info', message);
      return { tag: 'done', val: { result: 'done', output: JSON.stringify({ message }) } };
    } catch (error) {
      return { tag: 'failed', val: { message: error.payload?.message ?? String(error), details: 'null' } };
    }
  },
};
