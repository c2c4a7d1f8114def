/*
 * store - the storage layer: everything statusd and statusctl do in PostgreSQL, and the
 * only place with SQL outside sql/. By concern:
 *	store.c          the event log: storing a batch of events, reading the log back
 *	store_schema.c   schema migrations, the schema version, session set-up, partitions
 *	store_message.c  messages and their recipients' status, the receipt check
 *	store_user.c     users, their domains and their API tokens
 *	store_prefs.c    preferences and presence
 *	store_webhook.c  webhook endpoints' locks and cursors
 *	store_mdn.c      server-sent MDNs: the decisions, the sender's queue
 * It returns C structs (or rows); render.h makes the API's JSON documents of them.
 *
 * DESIGN
 *	Every function takes a connected PGconn and blocks on it; statusd calls them from its
 *	database threads (dbworker.h), statusctl directly. All SQL with data in it is
 *	parameterized or goes through COPY with escaping in one place (store_copy_row).
 *
 * DIAGNOSTICS
 *	Functions return 0 (or a count) on success and -1 with a one-line *error_r on failure;
 *	*transient_r, where present, tells whether retrying on a new connection may help.
 */
#ifndef STORE_H
#define STORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "msevent.h"
#include "status.h"

struct mbuf;

/* Whether a failed result is worth retrying on a fresh connection: the connection is gone,
   or SQLSTATE class 08 (connection), 40 (rollback), 53 (resources) or 57 (operator). */
bool store_transient(PGconn *conn, const PGresult *res);
/* The error of a failed result (or of the connection if res is NULL), on one line. */
const char *store_error(PGconn *conn, const PGresult *res);
/*
 * Connect to conninfo without blocking past timeout_ms or a stop, for statusd's own threads
 * (webhooks, MDNs, the federation sender): the wait also watches wake_fd, and stop(arg) is
 * asked after each wake-up. *conn_r is set at once (the caller PQfinish()es it, also after
 * a failure). 0, or -1 with *error_r: libpq's reason, "stopping" or a timeout.
 */
int store_connect(const char *conninfo, int wake_fd, bool (*stop)(const void *arg), const void *arg,
                  int64_t timeout_ms, PGconn **conn_r, const char **error_r);

/* --- schema and maintenance (store_schema.c) ---------------------------------------- */

/* Schema version this program knows (the highest migration it ships). */
#define STORE_SCHEMA_VERSION 19

/*
 * Apply the migrations in sql_dir that the database lacks. Returns the schema version
 * after migrating, or -1. A database newer than sql_dir, or a gap in the numbering, is an
 * error that retrying cannot fix: *transient_r is false then.
 */
int store_migrate(PGconn *conn, const char *sql_dir, bool *transient_r, const char **error_r);
/* The schema version in the database (0 when none), or -1. */
int store_schema_version(PGconn *conn, const char **error_r);
/* Per-connection set-up for ingest: temporary staging tables. */
int store_session_setup(PGconn *conn, const char **error_r);
/* Create and drop event partitions for a retention window of retention_ms. */
int store_maintain(PGconn *conn, long long retention_ms, const char **error_r);
/* A tool's session: the server's notices only from warnings up (errors ignored). */
void store_session_quiet(PGconn *conn);

/* --- the event log (store.c) ----------------------------------------------------------- */

/* Append one event as a COPY text row for the staging table; seq numbers it in its batch. */
void store_copy_row(struct mbuf *copy, int seq, const struct msevent *ev);

/* An event that entered the log, as the feeds show it. Strings are malloc'd. */
struct store_logged {
	int64_t log_offset;
	int64_t time_ms;
	int type;        /* enum msevent_type */
	int64_t message; /* messages.id */
	char *event_id;
	char *recipient; /* the recipient it counts for */
	char *details;   /* JSON object text, or NULL */
	char *tracking_id;
	char *message_id;
	char *owner;  /* who may see it */
	char *sender; /* envelope sender (for domain admins) */
};

/*
 * Store a batch in one transaction: COPY the rows (from store_copy_row) and fold them in.
 * On success returns 0; *logged_r (caller frees with store_logged_free) and *nlogged_r are
 * the events that entered the log, in offset order (new events joined to a message, and
 * earlier events this batch joined); *head_r and *epoch_r describe the log. inbound says
 * that the rows may hold inbound events, which go to their own table (sql/007); reports that
 * they may hold report events (sql/009), kept in theirs, those that count as status events.
 * outbox, when not NULL, adds the events that are reported to other sites to the federation
 * outbox in the same transaction (sql/011), and says how many in outbox->added. steps: the
 * database has msgstatus_ingest()'s steps as functions (schema 012), called one by one.
 */
struct store_outbox {
	int default_level;       /* fedpolicy.h's level for domains not in the lists */
	const char *sql_domains; /* PostgreSQL array literals of the per-domain rules */
	const char *sql_levels;
	int64_t added; /* out: rows added; -1 when the site remembers no other site's mail */
};
/* Whether the database has the outbox (schema 011; statusd may run on an older one). */
int store_outbox_available(PGconn *conn, bool *available_r, const char **error_r);
/* Whether it has msgstatus_ingest()'s steps as functions statusd calls (schema 012). */
int store_ingest_steps_available(PGconn *conn, bool *available_r, const char **error_r);
int store_ingest(PGconn *conn, const struct mbuf *copy, bool inbound, bool reports, bool steps,
                 struct store_outbox *outbox, struct store_logged **logged_r, size_t *nlogged_r,
                 int64_t *head_r, int64_t *epoch_r, bool *transient_r, const char **error_r);
/*
 * A small batch (at most STORE_SMALL_BATCH rows, no inbound events, no reports, no outbox
 * step) as store_ingest() stores it, in one round trip: the rows go as the fields of an
 * array to msgstatus_ingest_small() (schema 017), sent with the read of the log's head in
 * one pipeline, one implicit transaction. The same results as store_ingest().
 */
#define STORE_SMALL_BATCH 32
/* Whether the database has msgstatus_ingest_small() (schema 017). */
int store_ingest_small_available(PGconn *conn, bool *available_r, const char **error_r);
int store_ingest_small(PGconn *conn, const struct mbuf *copy, struct store_logged **logged_r,
                       size_t *nlogged_r, int64_t *head_r, int64_t *epoch_r, bool *transient_r,
                       const char **error_r);
void store_logged_free(struct store_logged *logged, size_t n);

/*
 * Events of the log with after < log_offset <= upto, in order, at most limit; when user is
 * not NULL only those the principal (user, domains) may see. Fills *logged_r (free with
 * store_logged_free) and *n_r. Outside a transaction the query is a prepared statement of
 * the connection (prepared on first use), with its results in binary.
 */
int store_log_range(PGconn *conn, int64_t after, int64_t upto, int limit, const char *user,
                    char *const *domains, size_t ndomains, struct store_logged **logged_r,
                    size_t *n_r, bool *transient_r, const char **error_r);

/*
 * The same events as store_log_range, handed to fn one at a time (on this thread, in
 * order) instead of copied: the strings of *l belong to the query's result and are valid
 * only during the call. Only what an event's record needs is read: l->message is 0 and
 * l->owner and l->sender are NULL (the same filter chose the rows). *n_r is the number
 * of events.
 */
int store_log_scan(PGconn *conn, int64_t after, int64_t upto, int limit, const char *user,
                   char *const *domains, size_t ndomains,
                   void (*fn)(void *ctx, const struct store_logged *l), void *ctx, size_t *n_r,
                   bool *transient_r, const char **error_r);

/* The log's head and epoch. */
int store_log_head(PGconn *conn, int64_t *head_r, int64_t *epoch_r, const char **error_r);
/*
 * Have the connection told of new events: LISTEN msgstatus_log, whose notifications carry
 * the new head (PQnotifies). 0 or -1.
 */
int store_log_listen(PGconn *conn, const char **error_r);

/* --- messages and status (store_message.c) ------------------------------------------- */

/* A recipient of a message as stored: its status is status_view() of state. */
struct store_recipient {
	char *recipient;
	char *orig_recipient; /* the address before rewriting, or NULL */
	struct status_state state;
	char *details; /* JSON object text, or NULL */
};

/* An event of a message's timeline. */
struct store_event {
	int64_t log_offset;
	int64_t time_ms;
	int type; /* enum msevent_type */
	char *recipient, *source, *event_id;
	char *details; /* JSON object text, or NULL */
};

/* A message and its recipients (by address), with a page of its timeline if asked for. */
/* A DSN or MDN entry kept about a message (sql/009, store_report.c). */
struct store_report {
	char *report_id, *kind; /* "dsn" or "mdn" */
	char *recipient;        /* as the report names it */
	char *rcpt;             /* the recipient it counts for, NULL if none */
	char *proof;            /* dkim, envid, not_recipient, unproven */
	int status;             /* what it says (lib/msevent.h), 0 for nothing known */
	bool verified;
	int64_t time_ms;
};

struct store_message {
	int64_t id; /* messages.id */
	char *tracking_id, *message_id, *sender, *queue_id;
	char *owner;       /* who may see it; NULL in store_list's messages */
	int64_t size;      /* bytes, -1 when unknown (and in store_list's messages) */
	int64_t queued_ms; /* 0 when unknown */
	struct store_recipient *rcpts;
	size_t nrcpts;
	struct store_event *events; /* the timeline's page, in time order */
	size_t nevents;
	bool more_events;             /* a page follows, after the last event's offset */
	struct store_report *reports; /* store_status's: every report entry, oldest first */
	size_t nreports;
};

/* The report entries about message (messages.id) into m->reports: 0, or -1. */
int store_reports_of(PGconn *conn, int64_t message, struct store_message *m, bool *transient_r,
                     const char **error_r);
void store_reports_free(struct store_report *reps, size_t n);
/*
 * A report as it came (GET /api/v1/reports/{id}), for user, who must own its message (the
 * sender alone: a report may hold what the recipient's side wrote). 1 and *raw_r,
 * *truncated_r, *tracking_id_r (the caller frees both strings), 0 if there is none of user's,
 * -1 on error.
 */
int store_report_raw(PGconn *conn, const char *report_id, const char *user, char **raw_r,
                     bool *truncated_r, char **tracking_id_r, bool *transient_r,
                     const char **error_r);

/* Free n messages (NULL-safe). */
void store_messages_free(struct store_message *msgs, size_t n);

/*
 * Look up a message by tracking id or Message-ID (with or without angle brackets). With
 * user not NULL, only messages user owns or sent from one of domains count: anyone can
 * send mail with a Message-ID copied from someone else's, and that must not hide the
 * other's message from its owner. Returns 1 and *msg_r (free with store_messages_free(m,
 * 1)); its owner and sender are for authorization; 0 if there is no such message; -1 on
 * error. With events_max > 0 the message also has a page of its logged events in time
 * order, at most events_max from after the cursor events_after (a log offset, 0 for the
 * start), for a timeline; a read, unread or deleted that repeats its recipient's previous
 * one is left out.
 */
int store_status(PGconn *conn, const char *id, const char *user, char *const *domains,
                 size_t ndomains, int events_max, int64_t events_after,
                 struct store_message **msg_r, bool *transient_r, const char **error_r);

/* Filters for store_list: NULL / 0 means no filter. */
struct store_list_filter {
	int status;                 /* enum msevent_type of a recipient's shown status */
	const char *recipient;      /* a recipient's address */
	int64_t since_ms, until_ms; /* queued in [since, until) */
	int64_t cursor;             /* messages.id: list what comes after it (older) */
	int limit;                  /* 1..200 */
};

/*
 * The messages a principal may see, newest first (by queued time), with their recipients:
 * returns 0 with *msgs_r (free with store_messages_free), *n_r of them and *more_r when a
 * page follows (after the last message's id); or -1.
 */
int store_list(PGconn *conn, const char *user, char *const *domains, size_t ndomains,
               const struct store_list_filter *flt, struct store_message **msgs_r, size_t *n_r,
               bool *more_r, bool *transient_r, const char **error_r);

/*
 * Is user a recipient of the message id (tracking id or Message-ID)? Returns 1 with
 * *tracking_id_r (caller frees) and *receipts_r (the user has read receipts on), 0 if not
 * (or no such message), -1 on error.
 */
int store_receipt_target(PGconn *conn, const char *id, const char *user, char **tracking_id_r,
                         bool *receipts_r, bool *transient_r, const char **error_r);

/* --- users and API tokens (store_user.c) --------------------------------------------- */

/* Free n strings and their array (NULL-safe). */
void store_strings_free(char **v, size_t n);

/*
 * The valid (not revoked, not expired) API token whose SHA-256 is hash: returns 1 with
 * *name_r (users.name as stored; caller frees), the domains its user administers (lower
 * case; free with store_strings_free) and *expires_ms_r (INT64_MAX: never); 0 if there is
 * none; -1 on error.
 */
int store_token_find(PGconn *conn, const unsigned char *hash, size_t hash_len, char **name_r,
                     char ***domains_r, size_t *ndomains_r, int64_t *expires_ms_r,
                     bool *transient_r, const char **error_r);
/* The domains user administers (lower case): 1 as above, 0 if there is no such user, -1. */
int store_user_domains(PGconn *conn, const char *user, char ***domains_r, size_t *ndomains_r,
                       bool *transient_r, const char **error_r);

/* A user as statusctl shows it. */
struct store_user {
	bool read_receipts, presence;
	char **domains; /* administered, as stored (free with store_strings_free) */
	size_t ndomains;
	int64_t api_tokens; /* valid ones */
	int64_t created_ms;
};

/* A user: 1 and *u_r, 0 if there is no such user, -1. */
int store_user_get(PGconn *conn, const char *user, struct store_user *u_r, const char **error_r);
/* Make user the administrator of exactly these domains (creates the user). 0 or -1. */
int store_user_admin_set(PGconn *conn, const char *user, char *const *domains, size_t n,
                         const char **error_r);
/* user administers no domain any more. 0 or -1. */
int store_user_admin_clear(PGconn *conn, const char *user, const char **error_r);

/* An API token as stored (never the token itself). */
struct store_token {
	int64_t id;
	char *user;
	char *label; /* or NULL */
	int64_t created_ms;
	int64_t expires_ms; /* 0: never */
	int64_t revoked_ms; /* 0: not revoked */
	const char *state;  /* "valid", "expired" or "revoked" (static) */
};

/*
 * Store a new token of user (creating the user) by its SHA-256, valid for lifetime_ms (0:
 * no expiry), in one transaction: 0 and *tok_r (the caller frees its user and label), or
 * -1.
 */
int store_token_create(PGconn *conn, const char *user, const unsigned char *hash, size_t hash_len,
                       const char *label, int64_t lifetime_ms, struct store_token *tok_r,
                       const char **error_r);
/* The tokens of user (NULL: everyone's) by id: 0 with *toks_r and *n_r, or -1. */
int store_token_list(PGconn *conn, const char *user, struct store_token **toks_r, size_t *n_r,
                     const char **error_r);
/* Free n tokens and their array. */
void store_tokens_free(struct store_token *toks, size_t n);
/*
 * Revoke token id: 1 with *user_r (caller frees) and *already_r (it was revoked before),
 * 0 if there is no such token, -1.
 */
int store_token_revoke(PGconn *conn, int64_t id, char **user_r, bool *already_r,
                       const char **error_r);

/* --- preferences and presence (store_prefs.c) ---------------------------------------- */

struct store_prefs {
	bool read_receipts; /* default on */
	bool presence;      /* default off */
	const char *mdn;    /* "never", "always" or NULL: unset (the userdb's default) */
};

/* A user's preferences; the defaults if the user has no row. */
int store_prefs_get(PGconn *conn, const char *user, struct store_prefs *prefs_r, bool *transient_r,
                    const char **error_r);
/* Set them (-1, NULL: leave as is; mdn "default" makes it unset); creates the user's row. */
int store_prefs_set(PGconn *conn, const char *user, int read_receipts, int presence,
                    const char *mdn, bool *transient_r, const char **error_r);

struct store_presence {
	bool online;
	int64_t last_seen_ms; /* 0: never */
	char *client;         /* or NULL */
	char *typing_to;      /* whom the user is writing to now, or NULL */
};

/*
 * A user's presence if they opted in: returns 1 and *pr_r (free its strings with
 * store_presence_clear), 0 if they did not (or are unknown), -1 on error.
 */
int store_presence_get(PGconn *conn, const char *user, struct store_presence *pr_r,
                       bool *transient_r, const char **error_r);
void store_presence_clear(struct store_presence *pr);
/*
 * Record a sign of life from webmail: online for online_ms from now, typing to typing_to
 * (NULL: not typing) for typing_ms. Ignored for users who did not opt in. 0 or -1.
 */
int store_presence_touch(PGconn *conn, const char *user, const char *client, int64_t online_ms,
                         const char *typing_to, int64_t typing_ms, bool *transient_r,
                         const char **error_r);

/* --- webhooks' cursors (store_webhook.c) --------------------------------------------- */

/* A webhook thread's session: asynchronous commits, its name, LISTEN msgstatus_log. */
int store_webhook_session(PGconn *conn, const char **error_r);
/* Take the endpoint url's advisory lock for this session: 1, 0 if another holds it, -1. */
int store_webhook_lock(PGconn *conn, const char *url, const char **error_r);
/*
 * The endpoint's cursor, made at the log's head the first time (*created_r): 0 and
 * *cursor_r, or -1.
 */
int store_webhook_cursor_load(PGconn *conn, const char *url, int64_t *cursor_r, bool *created_r,
                              const char **error_r);
/* Save the endpoint's cursor. 0 or -1. */
int store_webhook_cursor_save(PGconn *conn, const char *url, int64_t cursor, const char **error_r);

/* --- server-sent MDNs (store_mdn.c, docs/mdn.md) --------------------------------------- */

struct mdn_request;

/* A read that asks for a disposition notification: the plugin's mdn event. */
struct store_mdn_read {
	const struct mdn_request *req;
	const char *mailbox; /* NULL if not said */
	int64_t uid;         /* -1 if not said */
	const char *event_id;
	int64_t time_ms;
};

/*
 * Decide about a read with the user's preference (mdn_decide) and record the decision,
 * once per user and Message-ID: a decision made before stands. 0 with *send_r telling
 * whether the recorded decision is to send, or -1. A new decision to send is announced
 * with NOTIFY msgstatus_mdn. A read without a usable Message-ID is decided, not recorded.
 */
int store_mdn_decide(PGconn *conn, const struct store_mdn_read *rd, bool *send_r, bool *transient_r,
                     const char **error_r);

/* A notification to write, claimed by the sender. */
struct store_mdn_job {
	char *recipient, *message_id, *notify_to, *subject; /* subject may be NULL */
	int attempts;                                       /* this one included */
};

/* The sender's session: LISTEN msgstatus_mdn. 0 or -1. */
int store_mdn_session(PGconn *conn, const char **error_r);
/* Notifications claimed more than older_ms ago without an outcome (statusd stopped while
   sendmail ran) become "unknown": never handed over again. Their number, or -1. */
int store_mdn_recover(PGconn *conn, long long older_ms, const char **error_r);
/* Claim the notification due first (state sending): 1 and *job_r (free it with
   store_mdn_job_clear), 0 if none is due, -1. */
int store_mdn_claim(PGconn *conn, struct store_mdn_job *job_r, const char **error_r);
/* Milliseconds until the next notification is due (0: now), or -1 if none waits; -2 on
   error. */
long long store_mdn_next_due(PGconn *conn, const char **error_r);
/* The outcome of an attempt: why (NULL: sent); then retry in retry_ms, or give up (< 0). */
int store_mdn_finish(PGconn *conn, const struct store_mdn_job *job, const char *why,
                     long long retry_ms, const char **error_r);
void store_mdn_job_clear(struct store_mdn_job *job);
/* --- the federation outbox (store_fedout.c, sql/011) ---------------------------------- */

/* A destination of the outbox, with the sender's state for it (fed_peers). */
struct store_fedout_dest {
	char *destination;
	int64_t waiting, failed; /* rows */
	int64_t oldest_ms;       /* the oldest waiting row's creation; 0: none */
	char *endpoint;          /* or NULL */
	int64_t last_success_ms; /* 0: never */
	char *last_error;        /* or NULL */
	int64_t last_error_ms;
	unsigned failures;   /* failed attempts in a row */
	int64_t next_try_ms; /* 0: none (no backoff) */
	bool due;            /* no backoff now */
	int64_t later_in_ms; /* until the first row answered "later" is due; 0: none waits */
};

/* A waiting event. */
struct store_fedout_row {
	int64_t id;
	char *reporter; /* the recipient's domain */
	char *event_id;
	int status; /* enum msevent_type: delivered, read, unread, deleted */
	char *origin_tracking_id;
	char *recipient;
	int64_t time_ms;
};

enum store_fedout_fate {
	STORE_FEDOUT_DONE = 0,    /* acknowledged: the rows go */
	STORE_FEDOUT_RETRY = 1,   /* kept; the destination waits delay_ms */
	STORE_FEDOUT_REFUSED = 2, /* refused for good: the rows fail with error */
};

/* The sender's session: its name, UTC, LISTEN msgstatus_outbox. */
int store_fedout_session(PGconn *conn, const char **error_r);
/* Drop rows older than expiry_ms (of destination only, its waiting ones, unless NULL);
 *expired_r: how many of them were still waiting. */
int store_fedout_expire(PGconn *conn, const char *destination, long long expiry_ms,
                        int64_t *expired_r, const char **error_r);
/* Withdraw a destination's waiting rows that may not leave now: all of them at level 0
   (fedpolicy.h), all but delivered at level 1, and at level 2 those about reading of
   recipients whose read receipts are off now. *withdrawn_r: how many. */
int store_fedout_withdraw(PGconn *conn, const char *destination, int level, int64_t *withdrawn_r,
                          const char **error_r);
/* The destinations with rows (peers: also those with state only), by name. */
int store_fedout_dests(PGconn *conn, bool peers, struct store_fedout_dest **dests_r, size_t *n_r,
                       const char **error_r);
void store_fedout_dests_free(struct store_fedout_dest *d, size_t n);
/* A destination's first waiting rows in id order, at most limit, but none of the nskip
   reporting domains in skip (may be NULL with 0), nor one answered "later" whose
   not_before has not passed (store_fedout_later). */
int store_fedout_rows(PGconn *conn, const char *destination, const char *const *skip, size_t nskip,
                      int limit, struct store_fedout_row **rows_r, size_t *n_r,
                      const char **error_r);
void store_fedout_rows_free(struct store_fedout_row *rows, size_t n);
/* A report's fate for its n rows, and the destination's state: failures in a row (0
   after a success or a refusal), the endpoint used (may be NULL), error (NULL on success). */
int store_fedout_result(PGconn *conn, const char *destination, const char *endpoint,
                        const struct store_fedout_row *rows, size_t n, enum store_fedout_fate fate,
                        const char *error, unsigned failures, int64_t delay_ms,
                        const char **error_r);
/* The n rows a destination answered "later": they stay, and store_fedout_rows() leaves them
   out for delay_ms, or for a quarter of the row's age in the outbox if that is longer, but
   at most max_ms (schema 015's not_before). The destination's state is not touched. */
int store_fedout_later(PGconn *conn, const struct store_fedout_row *rows, size_t n,
                       int64_t delay_ms, int64_t max_ms, const char **error_r);

#endif
