/** Who is looking (GET /api/v1/session), for every page: the header, delete buttons, admin links. */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { SessionInfo } from './api.js';

export interface SessionState {
  info: SessionInfo;
  /** Asks the server again (after a sign-in or sign-out). */
  refresh(): Promise<void>;
}

export const ANONYMOUS: SessionInfo = { user: null, admin: false, authEnabled: false, deleteEnabled: false, csrf: null };

export const SessionContext = createContext<SessionState>({ info: ANONYMOUS, refresh: async () => undefined });

export function useSession(): SessionState {
  return useContext(SessionContext);
}
