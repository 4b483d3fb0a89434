/**
 * The part of a bunyan logger the authorizers use. A bunyan Logger (or a child of the server's
 * logger) fits as is; without one, the authorizers stay quiet.
 */
import { ConfigError } from '../config/errors';

export interface AuthLogger {
  debug(fields: object, msg?: string): unknown;
  info(fields: object, msg?: string): unknown;
  warn(fields: object, msg?: string): unknown;
  error(fields: object, msg?: string): unknown;
}

const noop = (): undefined => undefined;

export const QUIET_LOGGER: AuthLogger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop });

/** The logger given in options, checked, or the quiet default. */
export function authLogger(logger: unknown): AuthLogger {
  if (logger === undefined || logger === null) return QUIET_LOGGER;
  const l = logger as Partial<AuthLogger>;
  for (const level of ['debug', 'info', 'warn', 'error'] as const) {
    if (typeof l[level] !== 'function') {
      throw new ConfigError('logger', `a bunyan-like logger with a ${level}() method`);
    }
  }
  return l as AuthLogger;
}
