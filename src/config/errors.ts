/** A bad option or config value. `key` names the option, the message says what was expected. */
export class ConfigError extends Error {
  readonly code = 'FTPD_ERR_CONFIG';
  constructor(
    readonly key: string,
    expected: string,
  ) {
    super(`${key}: ${expected}`);
    this.name = 'ConfigError';
  }
}
