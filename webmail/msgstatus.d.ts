// Type declarations for msgstatus.js (the browser client of statusd's API and feeds).

export type StatusName =
  | "queued" | "deferred" | "relayed" | "delivered" | "read" | "unread" | "deleted"
  | "bounced" | "expired";

/** What a feed or timeline event says happened: a status, or one of the recipient's
 * copies of the message entered a mailbox (copied) or was expunged (expunged). */
export type EventName = StatusName | "copied" | "expunged";

/** A message's overall state: its least advanced recipient; "partial" if some failed. */
export type SummaryStatus = StatusName | "partial";

export const STATUSES: readonly StatusName[];
/** The chat-style mark of each status: ◷ ✓ ✓✓ ✕ */
export const MARKS: Readonly<Record<SummaryStatus, string>>;

/** One event of the feed or of a timeline (docs/api.md). */
export interface FeedEvent {
  type?: "event";
  offset: number;
  epoch?: number;
  message_id?: string | null;
  tracking_id?: string | null;
  recipient: string;
  status: EventName;
  timestamp: string;
  latency_ms?: number;
  source?: string;
  details: Record<string, unknown>;
  event_id?: string;
}

export function timelineOrder(events: FeedEvent[]): FeedEvent[];

export class Recipient {
  readonly recipient: string;
  origRecipient?: string;
  /** null until an event is known */
  readonly status: StatusName | null;
  /** RFC 3339 time of the event that set the status */
  readonly timestamp: string | null;
  /**
   * the SMTP reply of the delivery attempt that set the delivery status, in RFC 8621's
   * smtpReply form ("550 5.1.1 <bob@example.net>: Recipient address rejected"); null when
   * it got none (details.postfix_reply then says why, in Postfix's words)
   */
  readonly smtpReply: string | null;
  readonly details: Record<string, unknown>;
  /** a read was ever seen */
  readonly displayed: boolean;
  /** JMAP deliveryStatus.delivered */
  readonly delivered: "queued" | "yes" | "no" | "unknown";
  /** ids of the DSNs about this recipient, oldest first (JMAP dsnBlobIds; MsgStatusClient.report) */
  readonly dsnReportIds: string[];
  /** ids of the MDNs about this recipient (JMAP mdnBlobIds) */
  readonly mdnReportIds: string[];
}

/** A DSN or MDN entry kept about a message (docs/api.md). */
export interface ReportEntry {
  report_id: string;
  kind: "dsn" | "mdn";
  recipient: string;
  /** what it says; null for an action msgstatus does not map */
  status: StatusName | null;
  /** it proved its origin and changed the recipient's status */
  verified: boolean;
  proof: "dkim" | "envid" | "not_recipient" | "unproven";
  timestamp: string;
}

/** A report as it came (GET /api/v1/reports/{id}): for the message's sender only. */
export interface RawReport {
  report_id: string;
  tracking_id: string;
  raw: string;
  truncated: boolean;
}

export interface Summary {
  status: SummaryStatus;
  counts: Partial<Record<StatusName, number>>;
  failed: number;
  total: number;
}

export class Message {
  readonly trackingId: string | null;
  readonly messageId: string | null;
  readonly sender: string | null;
  readonly queueId: string | null;
  readonly size: number | null;
  readonly queuedAt: string | null;
  readonly recipients: Map<string, Recipient>;
  /** events seen for it (from timeline() and the feed), in the order they happened */
  readonly events: FeedEvent[];
  /** the DSN and MDN entries about it, verified or not (from fetchStatus() and timeline()) */
  readonly reports: ReportEntry[];
  /** the id to ask statusd with: the tracking id, else the Message-ID */
  readonly id: string;
  readonly summary: Summary;
}

export type ConnectionState = "stopped" | "connecting" | "live" | "reconnecting" | "unauthorized";

export interface StateDetail {
  state: ConnectionState;
  attempt: number;
  transport?: "websocket" | "sse";
  /** ms until the next attempt */
  retryIn?: number;
  reason?: string;
  head?: number;
}

export interface ClientOptions {
  /** statusd's base URL; default: the page's origin */
  url?: string;
  /**
   * The bearer token, or a function returning one (called again with fresh = true after
   * the server refused the last one: mint a new short-lived token there).
   */
  token: string | ((fresh: boolean) => string | Promise<string>);
  /** default "auto": WebSocket, falling back to Server-Sent Events */
  transport?: "auto" | "websocket" | "sse";
  /** reconnect backoff bounds, ms (defaults 500 and 30000) */
  minDelay?: number;
  maxDelay?: number;
  /** WebSocket application ping, ms (default 25000) */
  pingInterval?: number;
  /** a connection not live (no hello) after this many ms is given up and retried (10000) */
  connectTimeout?: number;
  /** resume point remembered from an earlier session */
  offset?: number;
  epoch?: number;
}

export interface ListFilter {
  status?: StatusName;
  recipient?: string;
  since?: string;
  until?: string;
  limit?: number;
  cursor?: string | null;
}

export interface Preferences {
  user: string;
  read_receipts: boolean;
  presence: boolean;
  /** Server-sent MDNs (docs/mdn.md); null: the administrator's default. */
  mdn: "never" | "always" | null;
}

export interface Presence {
  user: string;
  online: boolean;
  last_seen: string | null;
  client: string | null;
  typing_to: string | null;
}

export class ProblemError extends Error {
  readonly status: number;
  readonly problem: { type?: string; title?: string; status?: number; detail?: string } | null;
}

export interface MsgStatusEventMap {
  state: CustomEvent<StateDetail>;
  event: CustomEvent<{ event: FeedEvent; message: Message }>;
  change: CustomEvent<{ message: Message; recipient: Recipient | null }>;
  reset: CustomEvent<Record<string, never>>;
}

export class MsgStatusClient extends EventTarget {
  constructor(options: ClientOptions);
  readonly url: string;
  readonly messages: Map<string, Message>;
  /** the offset and epoch of the last event received: where the feed resumes */
  readonly offset: number | null;
  readonly epoch: number | null;
  readonly head: number | null;
  readonly state: ConnectionState;

  /** Open the feed (and keep it open); resolves when it is live. */
  start(): Promise<void>;
  stop(): void;
  get(id: string): Message | null;

  load(filter?: ListFilter): Promise<{ messages: Message[]; nextCursor: string | null }>;
  fetchStatus(id: string): Promise<Message>;
  /** GET …/timeline, every page (it follows the server's next_cursor until null). */
  timeline(id: string): Promise<Message>;
  receipt(id: string): Promise<{ event_id: string; status: "read" }>;
  report(reportId: string): Promise<RawReport>;
  preferences(): Promise<Preferences>;
  setPreferences(prefs: Partial<Pick<Preferences, "read_receipts" | "presence" | "mdn">>): Promise<Preferences>;
  presence(user: string): Promise<Presence>;
  setPresence(state: "online" | "offline" | "typing", to?: string): Promise<unknown>;

  addEventListener<K extends keyof MsgStatusEventMap>(
    type: K, listener: (ev: MsgStatusEventMap[K]) => void, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions): void;
}

export default MsgStatusClient;
