/** Thrown by Authorizer.validateAuthentication when a login must be refused. */
export class AuthenticationFailedError extends Error {
  readonly code = 'FTPD_ERR_AUTH';
  constructor(message = 'Authentication failed.') {
    super(message);
    this.name = 'AuthenticationFailedError';
  }
}

/** Thrown by an authorizer whose backing store cannot answer now (the server replies 421). */
export class AuthorizerUnavailableError extends Error {
  readonly code = 'FTPD_ERR_AUTH_UNAVAILABLE';
  constructor(message = 'Authorizer unavailable.') {
    super(message);
    this.name = 'AuthorizerUnavailableError';
  }
}
