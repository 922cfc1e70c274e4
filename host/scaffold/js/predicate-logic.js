// What the criterion decides, apart from the host: free of WIT imports, so
// that `node --test` can check it.

/** Whether `email` is at one of `domains`, ignoring case. */
export function atOneOf(email, domains) {
  const at = email.lastIndexOf('@');
  const domain = at < 0 ? '' : email.slice(at + 1).toLowerCase();
  return domain !== '' && domains.some((d) => d.trim().toLowerCase() === domain);
}

/** Every problem of a config (JSON text). */
export function problems(config) {
  let parsed;
  try {
    parsed = JSON.parse(config);
  } catch (error) {
    return [{ field: '', message: `the config is not JSON: ${error.message}` }];
  }
  if (!Array.isArray(parsed.domains) || parsed.domains.length === 0) {
    return [{ field: '/domains', message: 'list at least one domain' }];
  }
  return [];
}
