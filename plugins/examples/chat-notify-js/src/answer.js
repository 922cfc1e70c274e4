// What the step decides, apart from the host: kept free of WIT imports so
// that `node --test` can check it.

const FIELDS = ['url', 'text'];
const TRANSIENT = ['timeout', 'transport', 'unavailable'];

/** Every problem of a config (JSON text); `check` checks a template's tokens. */
export function problems(config, check) {
  let parsed;
  try {
    parsed = JSON.parse(config);
  } catch (error) {
    return [{ field: '', message: `the config is not JSON: ${error.message}` }];
  }
  const found = Object.keys(parsed)
    .filter((key) => !FIELDS.includes(key))
    .map((key) => ({ field: `/${key}`, message: `unknown field \`${key}\`, expected one of url, text` }));
  if (typeof parsed.url !== 'string') {
    found.push({ field: '/url', message: 'the webhook URL is required' });
  } else if (!/^https?:\/\//.test(parsed.url)) {
    found.push({ field: '/url', message: 'the webhook URL must start with https:// or http://' });
  }
  if (typeof parsed.text !== 'string') {
    found.push({ field: '/text', message: 'the message is required' });
  } else {
    try {
      check(parsed.text);
    } catch (error) {
      found.push({ field: '/text', message: error.payload?.message ?? String(error) });
    }
  }
  return found;
}

/**
 * The outcome of the post: `{ answer }` or `{ error }` (a host error). Done
 * on a 2xx answer; tried again when the chat is busy or failing (429, 5xx:
 * after its Retry-After, else a minute) or could not be reached; failed
 * otherwise.
 */
export function outcome(sent) {
  if (sent.error) {
    const { code, message } = sent.error;
    return TRANSIENT.includes(code) ? retry(60, message) : failed(message);
  }
  const { status, headers } = sent.answer;
  if (status >= 200 && status < 300) {
    return { tag: 'done', val: { result: 'posted', output: 'null' } };
  }
  const why = `the chat answered HTTP ${status}`;
  if (status !== 429 && status < 500) {
    return failed(why);
  }
  const after = headers.find(([name]) => name.toLowerCase() === 'retry-after')?.[1]?.trim();
  return retry(/^\d+$/.test(after ?? '') ? Math.min(Number(after), 3600) : 60, why);
}

const retry = (seconds, reason) => ({ tag: 'retry', val: { afterMs: BigInt(seconds * 1000), reason } });
const failed = (message) => ({ tag: 'failed', val: { message, details: 'null' } });
