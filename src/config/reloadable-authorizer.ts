/**
 * The daemon's reload point for users: an Authorizer that passes every call to the one in force,
 * which `swap()` replaces. The server keeps this object for its whole life (its options are frozen),
 * so reloading users needs nothing from the server.
 *
 * Sessions are not tied to the authorizer they logged in with: after a swap, a logged-in user's
 * permission checks are answered by the new one. A user removed from the config loses access at
 * once; a user whose letters changed gets the new letters. Authorizers that keep per-login state
 * (postgres rows, system accounts) take it over from the old one first (`inheritLogins`).
 */
import type { Authorizer, ClientInfo, PermLetter, UserLimits } from '../auth/types';

export class ReloadableAuthorizer implements Authorizer {
  constructor(private current: Authorizer) {}

  /** The authorizer in force. */
  get inner(): Authorizer {
    return this.current;
  }

  /** Put `next` in force for every call from now on; returns the one it replaces. */
  swap(next: Authorizer): Authorizer {
    const prev = this.current;
    this.current = next;
    return prev;
  }

  validateAuthentication(user: string, password: string, client: ClientInfo): Promise<void> {
    return this.current.validateAuthentication(user, password, client);
  }

  getHomeDir(user: string): string | Promise<string> {
    return this.current.getHomeDir(user);
  }

  hasPerm(user: string, perm: PermLetter, path: string): boolean | Promise<boolean> {
    return this.current.hasPerm(user, perm, path);
  }

  overridesBelow(user: string, path: string): boolean | Promise<boolean> {
    return this.current.overridesBelow?.(user, path) ?? false;
  }

  getPerms(user: string): string | Promise<string> {
    return this.current.getPerms(user);
  }

  getMsgLogin(user: string): string | Promise<string> {
    return this.current.getMsgLogin(user);
  }

  getMsgQuit(user: string): string | Promise<string> {
    return this.current.getMsgQuit(user);
  }

  /** The limits of the authorizer in force (none when it has no getLimits). */
  getLimits(user: string): UserLimits | Promise<UserLimits> {
    return this.current.getLimits?.(user) ?? {};
  }
}
