// @TITLE@: a Stepwise criterion. It holds when the contact's email address
// is at one of the listed domains; make `evaluate` decide what yours does.

import { atOneOf, problems } from './logic.js';

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['domains'],
  properties: { domains: { type: 'array', items: { type: 'string' }, description: 'Email domains, such as example.com.' } },
};

export const predicate = {
  describe() {
    return {
      id: '@ID@',
      version: '0.1.0',
      kind: 'predicate',
      title: '@TITLE@',
      description: "holds when the contact's email address is at one of the listed domains",
      configSchema: JSON.stringify(SCHEMA),
      channel: undefined,
      defaultActivation: 'automatic',
      results: [],
      capabilities: [],
    };
  },

  validateConfig(config) {
    return problems(config);
  },

  evaluate(context, config, subject) {
    return atOneOf(subject.contact.email ?? '', JSON.parse(config).domains ?? []);
  },
};
