// What the step decides, apart from the host: free of WIT imports, so that
// `node --test` can check it.

/** Every problem of a config (JSON text); `check` checks a template's tokens. */
export function problems(config, check) {
  let parsed;
  try {
    parsed = JSON.parse(config);
  } catch (error) {
    return [{ field: '', message: `the config is not JSON: ${error.message}` }];
  }
  const found = Object.keys(parsed)
    .filter((key) => key !== 'message')
    .map((key) => ({ field: `/${key}`, message: `unknown field \`${key}\`, expected message` }));
  if (typeof parsed.message !== 'string') {
    return [...found, { field: '/message', message: 'the message is required' }];
  }
  try {
    check(parsed.message);
  } catch (error) {
    found.push({ field: '/message', message: error.payload?.message ?? String(error) });
  }
  const length = [...parsed.message].length;
  if (length > 500) {
    found.push({ field: '/message', message: `at most 500 characters, not ${length}` });
  }
  return found;
}
