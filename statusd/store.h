/*
 * store - what statusd and statusctl do in PostgreSQL: schema migrations, partition
 * maintenance, storing a batch of events, and reading a message's status.
 *
 * DESIGN
 *	Every function takes a connected PGconn and blocks on it; statusd calls them from its
 *	database threads (dbworker.h), statusctl directly. All SQL with data in it is
 *	parameterized or goes through COPY with escaping in one place (store_copy_row).
 *	The feeds' JSON of an event (store_logged_json) is written directly from the row,
 *	without a json-c tree (jsonstr.h).
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

struct json_object;
struct mbuf;

/* Whether a failed result is worth retrying on a fresh connection: the connection is gone,
   or SQLSTATE class 08 (connection), 40 (rollback), 53 (resources) or 57 (operator). */
bool store_transient(PGconn *conn, const PGresult *res);
/* The error of a failed result (or of the connection if res is NULL), on one line. */
const char *store_error(PGconn *conn, const PGresult *res);

/* Schema version this program knows (the highest migration it ships). */
#define STORE_SCHEMA_VERSION 7

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
 * earlier events this batch joined); *head_r and *epoch_r describe the log.
 */
int store_ingest(PGconn *conn, const struct mbuf *copy, struct store_logged **logged_r,
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
 * only during the call. *n_r is the number of events.
 */
int store_log_scan(PGconn *conn, int64_t after, int64_t upto, int limit, const char *user,
                   char *const *domains, size_t ndomains,
                   void (*fn)(void *ctx, const struct store_logged *l), void *ctx, size_t *n_r,
                   bool *transient_r, const char **error_r);

/*
 * Append the feed (and webhook) JSON form of a logged event, without a newline: written
 * directly (jsonstr.h), byte for byte what json-c printed of a tree of the same members.
 */
void store_logged_json(const struct store_logged *l, int64_t epoch, struct mbuf *out);

/* The log's head and epoch. */
int store_log_head(PGconn *conn, int64_t *head_r, int64_t *epoch_r, const char **error_r);

/*
 * Look up a message by tracking id or Message-ID (with or without angle brackets) and
 * build its status document (docs/api.md). With user not NULL, only messages user owns or
 * sent from one of domains count: anyone can send mail with a Message-ID copied from
 * someone else's, and that must not hide the other's message from its owner. Returns 1
 * and *doc_r (caller puts it) and, if not NULL, *owner_r and *sender_r (caller frees) for
 * authorization; 0 if there is no such message; -1 on error. With events_max > 0 the
 * document also has "events": the message's logged events in time order, a page of at
 * most events_max from after the cursor events_after (a log offset, 0 for the start), and
 * "next_cursor" (null on the last page), for a timeline; a read, unread or deleted that
 * repeats its recipient's previous one is left out.
 */
int store_status(PGconn *conn, const char *id, const char *user, char *const *domains,
                 size_t ndomains, int events_max, int64_t events_after, struct json_object **doc_r,
                 char **owner_r, char **sender_r, bool *transient_r, const char **error_r);

/* Filters for store_list: NULL / 0 means no filter. */
struct store_list_filter {
	int status;                 /* enum msevent_type of a recipient's shown status */
	const char *recipient;      /* a recipient's address */
	int64_t since_ms, until_ms; /* queued in [since, until) */
	int64_t cursor;             /* messages.id: list what comes after it (older) */
	int limit;                  /* 1..200 */
};

/*
 * The messages a principal may see, newest first (by queued time), with their recipients'
 * statuses:
 * {"messages":[...],"next_cursor":"..."|null}. Returns 0 and *doc_r, or -1.
 */
int store_list(PGconn *conn, const char *user, char *const *domains, size_t ndomains,
               const struct store_list_filter *flt, struct json_object **doc_r, bool *transient_r,
               const char **error_r);

/*
 * Is user a recipient of the message id (tracking id or Message-ID)? Returns 1 with
 * *tracking_id_r (caller frees) and *receipts_r (the user has read receipts on), 0 if not
 * (or no such message), -1 on error.
 */
int store_receipt_target(PGconn *conn, const char *id, const char *user, char **tracking_id_r,
                         bool *receipts_r, bool *transient_r, const char **error_r);

/* A user's preferences ({"read_receipts":..,"presence":..}); defaults if no row. */
int store_prefs_get(PGconn *conn, const char *user, struct json_object **doc_r, bool *transient_r,
                    const char **error_r);
/* Set them (-1: leave as is); creates the user's row. */
int store_prefs_set(PGconn *conn, const char *user, int read_receipts, int presence,
                    bool *transient_r, const char **error_r);

/*
 * A user's presence {"user","online","last_seen","client","typing_to"} if they opted in:
 * returns 1 and *doc_r, 0 if they did not (or are unknown), -1 on error.
 */
int store_presence_get(PGconn *conn, const char *user, struct json_object **doc_r,
                       bool *transient_r, const char **error_r);
/*
 * Record a sign of life from webmail: online for online_ms from now, typing to typing_to
 * (NULL: not typing) for typing_ms. Ignored for users who did not opt in. 0 or -1.
 */
int store_presence_touch(PGconn *conn, const char *user, const char *client, int64_t online_ms,
                         const char *typing_to, int64_t typing_ms, bool *transient_r,
                         const char **error_r);

#endif
