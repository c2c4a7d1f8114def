/*
 * store - the event log in PostgreSQL (storing batches, reading the log back for the feeds),
 * and what the other files of the storage layer share (store_int.h). See store.h and sql/.
 *
 * SECURITY
 *	Event data reaches SQL only through COPY (escaped in store_copy_row, the one place
 *	that does it), as the fields of those rows in one text[] parameter (a small batch,
 *	copy_fields_array), as those fields again in the fast path's COPY into events and
 *	in its quoted array parameters (ingest_fast.c), or as query parameters.
 *	Migration files come from sql_dir, which is trusted like the configuration.
 */
#include "store.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "jsonstr.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"
#include "status.h"
#include "store_int.h"

bool
store_transient(PGconn *conn, const PGresult *res)
{
	const char *state;

	if (conn == NULL || PQstatus(conn) != CONNECTION_OK || res == NULL)
		return true;
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL)
		return true; /* failed on the client side: the connection broke */
	return strncmp(state, "08", 2) == 0 || strncmp(state, "40", 2) == 0 ||
	       strncmp(state, "53", 2) == 0 || strncmp(state, "57", 2) == 0;
}

const char *
store_error(PGconn *conn, const PGresult *res)
{
	const char *m = res ? PQresultErrorMessage(res) : NULL;
	char buf[400];
	size_t n;

	if (m == NULL || *m == '\0')
		m = conn ? PQerrorMessage(conn) : "no connection";
	snprintf(buf, sizeof(buf), "%s", m);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	return errfmt("%s", buf);
}

int
store_connect(const char *conninfo, int wake_fd, bool (*stop)(const void *arg), const void *arg,
              int64_t timeout_ms, PGconn **conn_r, const char **error_r)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int64_t deadline = time_mono_ms() + timeout_ms, left;
	PGconn *conn = *conn_r = mynonnull(PQconnectStart(conninfo));

	if (PQstatus(conn) == CONNECTION_BAD)
		st = PGRES_POLLING_FAILED;
	while (st != PGRES_POLLING_OK) {
		struct pollfd pfd[2] = {
		        {wake_fd, POLLIN, 0},
		        {PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0},
		};
		int ready;

		if (st == PGRES_POLLING_FAILED) {
			*error_r = store_error(conn, NULL);
			return -1;
		}
		if (stop(arg)) {
			*error_r = "stopping";
			return -1;
		}
		if ((left = deadline - time_mono_ms()) <= 0) {
			*error_r = "timed out connecting";
			return -1;
		}
		if ((ready = poll(pfd, 2, (int)left)) < 0 && errno != EINTR)
			msg_panic("database connection: poll: %s", strerror(errno));
		if (ready > 0 && pfd[1].revents != 0)
			st = PQconnectPoll(conn);
	}
	return 0;
}

/* Run a command that returns no rows; 0 or -1 with the error. */
static int
exec_cmd(PGconn *conn, const char *sql, bool *transient_r, const char **error_r)
{
	PGresult *res = PQexec(conn, sql);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		if (transient_r)
			*transient_r = store_transient(conn, res);
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Roll back whatever is open, ignoring errors (the connection may be gone). */
static void
rollback(PGconn *conn)
{
	if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
		PQclear(PQexec(conn, "ROLLBACK"));
}

/* COPY text format: escape backslash and the delimiters; NULL is \N. */
static void
copy_field(struct mbuf *copy, const char *s)
{
	const char *run = s;

	if (s == NULL) {
		mbuf_append(copy, "\\N", 2);
		return;
	}
	for (; *s; s++) {
		const char *esc;
		switch (*s) {
		case '\\':
			esc = "\\\\";
			break;
		case '\t':
			esc = "\\t";
			break;
		case '\n':
			esc = "\\n";
			break;
		case '\r':
			esc = "\\r";
			break;
		default:
			continue;
		}
		mbuf_append(copy, run, (size_t)(s - run));
		mbuf_append(copy, esc, 2);
		run = s + 1;
	}
	mbuf_append(copy, run, (size_t)(s - run));
}

void
store_copy_row(struct mbuf *copy, int seq, const struct msevent *ev)
{
	char when[RFC3339_BUFSIZE];
	int64_t key = MSEV_IS_RECIPIENT(ev->type) ? status_event_key(ev->type, ev->time_ms) : 0;
	enum status_axis axis = status_axis(ev->type);

	if (ev->type == MSEV_REPORT) {
		/* the keys of the status it says, should it count (sql/009 msgstatus_reports) */
		const char *name = msevent_detail_get(ev, "status");
		enum msevent_type says = name != NULL ? msevent_type_parse(name) : MSEV_NONE;

		key = MSEV_IS_STATUS(says) ? status_report_key(says, ev->time_ms) : 0;
		axis = MSEV_IS_STATUS(says) ? status_axis(says) : STATUS_AXIS_DELIVERY;
	}

	mbuf_printf(copy, "%d\t", seq);
	copy_field(copy, ev->id);
	mbuf_printf(copy, "\t%s\t%d\t%lld\t%lld\t", rfc3339_format(ev->time_ms, when),
	            (int)ev->type, axis == STATUS_AXIS_DELIVERY ? (long long)key : 0LL,
	            axis == STATUS_AXIS_READING ? (long long)key : 0LL);
	copy_field(copy, ev->source);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->tracking_id);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->queue_id);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->message_id);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->recipient);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->orig_recipient);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->sender);
	mbuf_putc(copy, '\t');
	copy_field(copy, ev->sasl_user);
	if (ev->size >= 0)
		mbuf_printf(copy, "\t%lld\t", (long long)ev->size);
	else
		mbuf_puts(copy, "\t\\N\t");
	copy_field(copy, ev->details ? json_object_to_json_string_ext(
	                                       ev->details, JSON_C_TO_STRING_PLAIN |
	                                                            JSON_C_TO_STRING_NOSLASHESCAPE)
	                             : NULL);
	/* the mailbox axis (schema 005): the expunge's key and the copies it counts */
	mbuf_printf(copy, "\t%lld\t%d\n", axis == STATUS_AXIS_MAILBOX ? (long long)key : 0LL,
	            MSEV_IS_RECIPIENT(ev->type) ? status_copies(ev->type, ev->source) : 0);
}

int
store_function_available(PGconn *conn, const char *name, bool *available_r, const char **error_r)
{
	PGresult *res = PQexecParams(conn, "SELECT to_regproc($1) IS NOT NULL", 1, NULL, &name,
	                             NULL, NULL, 0);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		*error_r = store_error(conn, res);
		rc = -1;
	} else
		*available_r = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return rc;
}

int
store_outbox_available(PGconn *conn, bool *available_r, const char **error_r)
{
	return store_function_available(conn, "msgstatus_outbox_add", available_r, error_r);
}

int
store_ingest_steps_available(PGconn *conn, bool *available_r, const char **error_r)
{
	return store_function_available(conn, "msgstatus_ingest_begin", available_r, error_r);
}

/* The batch's events for the federation outbox (sql/011). */
static int
outbox_add(PGconn *conn, struct store_outbox *o, bool inbound, bool *transient_r,
           const char **error_r)
{
	char level[16];
	const char *params[4] = {level, o->sql_domains, o->sql_levels, inbound ? "t" : "f"};
	PGresult *res;

	snprintf(level, sizeof(level), "%d", o->default_level);
	res = PQexecParams(conn,
	                   "SELECT msgstatus_outbox_add($1::integer, $2::text[], $3::integer[],"
	                   " $4::boolean)",
	                   4, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		return -1;
	}
	o->added = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

void
store_logged_free(struct store_logged *logged, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(logged[i].event_id);
		free(logged[i].recipient);
		free(logged[i].details);
		free(logged[i].tracking_id);
		free(logged[i].message_id);
		free(logged[i].owner);
		free(logged[i].sender);
	}
	free(logged);
}

/* A query of the ingest's steps with text parameters; its result, or NULL with the error. */
static PGresult *
step(PGconn *conn, const char *sql, int nparams, const char *const *params, int format, int ncols,
     bool *transient_r, const char **error_r)
{
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, format);

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != ncols) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		return NULL;
	}
	return res;
}

/*
 * msgstatus_ingest()'s steps (schema 012), called one by one: the appended events come
 * straight from msgstatus_ingest_append()'s result, in binary (the columns of
 * LOGGED_COLUMNS, see logged_row).
 */
static int
ingest_steps(PGconn *conn, struct store_logged **logged_r, size_t *nlogged_r, bool *transient_r,
             const char **error_r)
{
	char h[24], known[24], n[24];
	const char *params[2] = {h, known};
	PGresult *res;

	if ((res = step(conn, "SELECT h, known FROM msgstatus_ingest_begin()", 0, NULL, 0, 2,
	                transient_r, error_r)) == NULL)
		return -1;
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) || PQgetisnull(res, 0, 1)) {
		*error_r = "msgstatus_ingest_begin() returned no head";
		PQclear(res);
		return -1;
	}
	snprintf(h, sizeof(h), "%s", PQgetvalue(res, 0, 0));
	snprintf(known, sizeof(known), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	if ((res = step(conn, "SELECT * FROM msgstatus_ingest_append($1::bigint, $2::bigint)", 2,
	                params, 1, 11, transient_r, error_r)) == NULL)
		return -1;
	*logged_r = store_logged_from(res, nlogged_r);
	PQclear(res);
	snprintf(n, sizeof(n), "%zu", *nlogged_r);
	params[1] = n;
	if ((res = step(conn, "SELECT msgstatus_ingest_end($1::bigint, $2::bigint)", 2, params, 0,
	                1, transient_r, error_r)) == NULL) {
		store_logged_free(*logged_r, *nlogged_r);
		*logged_r = NULL;
		*nlogged_r = 0;
		return -1;
	}
	PQclear(res);
	return 0;
}

int
store_copy_in(PGconn *conn, const char *sql, const char *data, size_t len, char *state_r,
              bool *transient_r, const char **error_r)
{
	PGresult *res = PQexec(conn, sql);
	int rc = 0;

	if (PQresultStatus(res) != PGRES_COPY_IN) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	if (PQputCopyData(conn, data, (int)len) != 1 || PQputCopyEnd(conn, NULL) != 1) {
		*error_r = store_error(conn, NULL);
		*transient_r = true;
		return -1;
	}
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state_r != NULL)
			snprintf(state_r, 6, "%s", state != NULL ? state : "");
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		rc = -1;
	}
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	return rc;
}

int
store_ingest(PGconn *conn, const struct mbuf *copy, bool inbound, bool reports, bool steps,
             struct store_outbox *outbox, struct store_logged **logged_r, size_t *nlogged_r,
             int64_t *head_r, int64_t *epoch_r, bool *transient_r, const char **error_r)
{
	struct store_logged *logged = NULL;
	PGresult *res;
	size_t nl = 0;
	int n = 0;

	*transient_r = false;
	*logged_r = NULL;
	*nlogged_r = 0;
	if (exec_cmd(conn, "BEGIN", transient_r, error_r) < 0)
		return -1;
	if (store_copy_in(conn, "COPY ingest_stage FROM STDIN", copy->data, copy->len, NULL,
	                  transient_r, error_r) < 0)
		goto fail;
	/* the inbound events (not statuses) leave the batch for their table (sql/007) */
	/* what of it goes to other sites (sql/011): before msgstatus_inbound(), so that it
	   knows the mail the batch remembers anew, and before msgstatus_ingest(), which drops
	   what it stored before from nothing but the log, and the read receipts turned off */
	if (outbox != NULL && outbox_add(conn, outbox, inbound, transient_r, error_r) < 0)
		goto fail;
	if (inbound && exec_cmd(conn, "SELECT msgstatus_inbound()", transient_r, error_r) < 0)
		goto fail;
	/* the reports leave it too; those that count come back as status events (sql/009) */
	if (reports && exec_cmd(conn, "SELECT msgstatus_reports()", transient_r, error_r) < 0)
		goto fail;

	if (steps) {
		if (ingest_steps(conn, &logged, &nl, transient_r, error_r) < 0)
			goto fail;
		n = (int)nl;
	} else {
		/* before schema 012: the steps in one call (whose result copies the rows again) */
		res = PQexecParams(conn, "SELECT * FROM msgstatus_ingest()", 0, NULL, NULL, NULL,
		                   NULL, 1);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			*error_r = store_error(conn, res);
			*transient_r = store_transient(conn, res);
			PQclear(res);
			goto fail;
		}
		logged = store_logged_from(res, &nl);
		n = (int)nl;
		PQclear(res);
	}
	if (store_log_head(conn, head_r, epoch_r, error_r) < 0) {
		*transient_r = true;
		goto fail;
	}
	if (exec_cmd(conn, "COMMIT", transient_r, error_r) < 0) {
		store_logged_free(logged, (size_t)n);
		return -1;
	}
	*logged_r = logged;
	*nlogged_r = (size_t)n;
	return 0;
fail:
	store_logged_free(logged, (size_t)n);
	rollback(conn);
	return -1;
}

int
store_ingest_small_available(PGconn *conn, bool *available_r, const char **error_r)
{
	return store_function_available(conn, "msgstatus_ingest_small", available_r, error_r);
}

/*
 * The rows of copy (store_copy_row's COPY text) as a text[] literal of their fields, row
 * after row: \N is NULL, every other field is unescaped (store_copy_row escapes every
 * backslash, so each one starts an escape) and quoted for the array.
 */
static void
copy_fields_array(struct mbuf *out, const char *p, size_t len)
{
	const char *end = p + len;

	mbuf_putc(out, '{');
	while (p < end) {
		const char *f = p;

		while (p < end && *p != '\t' && *p != '\n')
			p++;
		if (f != end - len)
			mbuf_putc(out, ',');
		if (p - f == 2 && f[0] == '\\' && f[1] == 'N') {
			mbuf_puts(out, "NULL");
		} else {
			mbuf_putc(out, '"');
			for (const char *s = f; s < p; s++) {
				char c = *s;

				if (c == '\\' && s + 1 < p) {
					c = *++s;
					c = c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
				}
				if (c == '"' || c == '\\')
					mbuf_putc(out, '\\');
				mbuf_putc(out, c);
			}
			mbuf_putc(out, '"');
		}
		p++; /* the tab or the newline after the field */
	}
	mbuf_putc(out, '}');
}

/*
 * Read a pipeline's results up to its Sync, keeping the first result of query i (of
 * nqueries) in results[i] (each query gives its result, or PGRES_PIPELINE_ABORTED after an
 * error, then NULL) and an error that comes after the last query's result (the implicit
 * transaction's commit failed: a deferred check, or NOTIFY's queue full) in
 * results[nqueries], and leave pipeline mode. 0, or -1 when that failed: then the connection
 * is made unusable, so that the worker connects afresh (with its session set-up) instead
 * of sending more into a pipeline it cannot read.
 */
static int
pipeline_finish(PGconn *conn, PGresult **results, int nqueries)
{
	PGresult *res;
	int query = 0;

	while (query <= nqueries + 1 && PQstatus(conn) == CONNECTION_OK) {
		if ((res = PQgetResult(conn)) == NULL) {
			query++;
			continue;
		}
		if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			if (PQexitPipelineMode(conn) == 1)
				return 0;
			break;
		}
		if (query <= nqueries && results[query] == NULL)
			results[query] = res;
		else
			PQclear(res);
	}
	if (PQstatus(conn) == CONNECTION_OK) {
		shutdown(PQsocket(conn), SHUT_RDWR);
		PQconsumeInput(conn); /* sees the end: CONNECTION_BAD */
	}
	return -1;
}

int
store_ingest_small(PGconn *conn, const struct mbuf *copy, struct store_logged **logged_r,
                   size_t *nlogged_r, int64_t *head_r, int64_t *epoch_r, bool *transient_r,
                   const char **error_r)
{
	struct mbuf fields = MBUF_INIT;
	const char *params[1];
	PGresult *results[3] = {NULL, NULL, NULL}; /* the two queries', the commit's error */
	bool sent;
	int rc = -1;

	*transient_r = true;
	*logged_r = NULL;
	*nlogged_r = 0;
	if (PQenterPipelineMode(conn) != 1) {
		*error_r = store_error(conn, NULL);
		return -1;
	}
	copy_fields_array(&fields, copy->data, copy->len);
	params[0] = fields.data;
	/* one round trip: both queries and the Sync, which ends their implicit transaction
	   (a commit, or a rollback after an error) */
	sent = PQsendQueryParams(conn, "SELECT * FROM msgstatus_ingest_small($1::text[])", 1, NULL,
	                         params, NULL, NULL, 1) == 1 &&
	       PQsendQueryParams(conn, "SELECT head, epoch FROM log_head", 0, NULL, NULL, NULL,
	                         NULL, 0) == 1;
	mbuf_free(&fields);
	if (!sent)
		*error_r = store_error(conn, NULL);
	if (PQpipelineSync(conn) != 1 && sent) {
		*error_r = store_error(conn, NULL);
		sent = false;
	}
	if (pipeline_finish(conn, results, 2) < 0 || !sent) {
		if (sent)
			*error_r = store_error(conn, results[0]);
	} else if (results[2] != NULL) {
		*error_r = store_error(conn, results[2]);
		*transient_r = store_transient(conn, results[2]);
	} else if (PQresultStatus(results[0]) != PGRES_TUPLES_OK || PQnfields(results[0]) != 11) {
		*error_r = store_error(conn, results[0]);
		*transient_r = store_transient(conn, results[0]);
	} else if (PQresultStatus(results[1]) != PGRES_TUPLES_OK || PQntuples(results[1]) != 1) {
		*error_r = store_error(conn, results[1]);
	} else {
		*logged_r = store_logged_from(results[0], nlogged_r);
		*head_r = strtoll(PQgetvalue(results[1], 0, 0), NULL, 10);
		*epoch_r = strtoll(PQgetvalue(results[1], 0, 1), NULL, 10);
		*transient_r = false;
		rc = 0;
	}
	for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		PQclear(results[i]);
	return rc;
}

/*
 * The columns a struct store_logged is read from, in this order (see logged_row), as
 * msgstatus_ingest() returns them. The ingest and the log range query ask for them in
 * binary, which spares PostgreSQL the numeric arithmetic and the output functions of
 * every row.
 */
#define LOGGED_COLUMNS                                                                             \
	"e.log_offset, e.event_id, e.event_time, e.type, e.rcpt, e.details, e.message,"            \
	" m.tracking_id, m.message_id, m.owner, m.sender"

#define PG_EPOCH_US  946684800000000LL /* 2000-01-01, where PostgreSQL's timestamps count from */
#define JSONB_FORMAT 1                 /* the version byte of jsonb's binary form */

static char *
borrow_str(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* A binary integer column of size bytes (2 or 8), big-endian and signed. */
static int64_t
binary_int(PGresult *res, int row, int col, int size)
{
	const unsigned char *p = (const unsigned char *)PQgetvalue(res, row, col);
	uint64_t v = 0;

	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != size)
		msg_panic("store: column %d of the log is not a %d-byte integer", col, size);
	for (int i = 0; i < size; i++)
		v = v << 8 | p[i];
	if (size < 8 && (v >> (8 * size - 1)) != 0)
		v |= ~(uint64_t)0 << (8 * size); /* sign extension */
	return (int64_t)v;
}

/* A binary timestamptz as ms since 1970, rounded as (extract(epoch ...) * 1000)::bigint. */
static int64_t
binary_time_ms(PGresult *res, int row, int col)
{
	int64_t us, ms, rem;

	if (__builtin_add_overflow(binary_int(res, row, col, 8), PG_EPOCH_US, &us))
		us = INT64_MAX; /* 'infinity': no event has it (msevent checks the year) */
	ms = us / 1000;
	rem = us % 1000;
	if (rem >= 500)
		ms++;
	else if (rem <= -500)
		ms--;
	return ms;
}

/* A binary jsonb: its text follows the version byte (NULL for a version we do not know). */
static char *
binary_jsonb(PGresult *res, int row, int col)
{
	char *p = borrow_str(res, row, col);

	return p != NULL && PQgetlength(res, row, col) >= 1 && p[0] == JSONB_FORMAT ? p + 1 : NULL;
}

/*
 * Row i of a result with the columns of LOGGED_COLUMNS, as text or in binary (libpq ends
 * binary values with a NUL too, so text columns read the same); the strings point into res.
 */
static void
logged_row(PGresult *res, int i, struct store_logged *l)
{
	if (PQfformat(res, 0) == 1) {
		l->log_offset = binary_int(res, i, 0, 8);
		l->time_ms = binary_time_ms(res, i, 2);
		l->type = (int)binary_int(res, i, 3, 2);
		l->details = binary_jsonb(res, i, 5);
		l->message = binary_int(res, i, 6, 8);
	} else {
		l->log_offset = strtoll(PQgetvalue(res, i, 0), NULL, 10);
		l->time_ms = strtoll(PQgetvalue(res, i, 2), NULL, 10);
		l->type = atoi(PQgetvalue(res, i, 3));
		l->details = borrow_str(res, i, 5);
		l->message = strtoll(PQgetvalue(res, i, 6), NULL, 10);
	}
	l->event_id = borrow_str(res, i, 1);
	l->recipient = borrow_str(res, i, 4);
	l->tracking_id = borrow_str(res, i, 7);
	l->message_id = borrow_str(res, i, 8);
	l->owner = borrow_str(res, i, 9);
	l->sender = borrow_str(res, i, 10);
}

/* Row i of a result with the columns of LOG_SCAN_COLUMNS, in binary, as logged_row reads
   those; message, owner and sender stay as they are (0 and NULL). */
static void
scan_row(PGresult *res, int i, struct store_logged *l)
{
	l->log_offset = binary_int(res, i, 0, 8);
	l->event_id = borrow_str(res, i, 1);
	l->time_ms = binary_time_ms(res, i, 2);
	l->type = (int)binary_int(res, i, 3, 2);
	l->recipient = borrow_str(res, i, 4);
	l->details = binary_jsonb(res, i, 5);
	l->tracking_id = borrow_str(res, i, 6);
	l->message_id = borrow_str(res, i, 7);
}

static char *
dup_str(const char *s)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = mystrdup(s);
	return d;
}

/* The rows of a result with the columns of LOGGED_COLUMNS, as malloc'd copies. */
struct store_logged *
store_logged_from(PGresult *res, size_t *n_r)
{
	struct store_logged *logged = NULL;
	int n = PQntuples(res);

	if (n > 0)
		logged = mycalloc((size_t)n, sizeof(*logged));
	for (int i = 0; i < n; i++) {
		struct store_logged *l = &logged[i];
		logged_row(res, i, l);
		l->event_id = dup_str(l->event_id);
		l->recipient = dup_str(l->recipient);
		l->details = dup_str(l->details);
		l->tracking_id = dup_str(l->tracking_id);
		l->message_id = dup_str(l->message_id);
		l->owner = dup_str(l->owner);
		l->sender = dup_str(l->sender);
	}
	*n_r = (size_t)n;
	return logged;
}

/* --- what store_*.c share (store_int.h) ---------------------------------------------- */

int
store_exec(PGconn *conn, const char *sql, bool *transient_r, const char **error_r)
{
	return exec_cmd(conn, sql, transient_r, error_r);
}

void
store_rollback(PGconn *conn)
{
	rollback(conn);
}

int
store_failed(PGconn *conn, PGresult *res, bool *transient_r, const char **error_r)
{
	*error_r = store_error(conn, res);
	*transient_r = store_transient(conn, res);
	PQclear(res);
	return -1;
}

PGresult *
store_want(PGconn *conn, PGresult *res, ExecStatusType want, const char **error_r)
{
	if (PQresultStatus(res) == want)
		return res;
	*error_r = store_error(conn, res);
	PQclear(res);
	return NULL;
}

char *
store_get_str(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : mystrdup(PQgetvalue(res, row, col));
}

void
store_text_array(struct mbuf *out, char *const *items, size_t n)
{
	mbuf_putc(out, '{');
	for (size_t i = 0; i < n; i++) {
		mbuf_printf(out, "%s\"", i ? "," : "");
		for (const char *p = items[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				mbuf_putc(out, '\\');
			mbuf_putc(out, *p);
		}
		mbuf_putc(out, '"');
	}
	mbuf_putc(out, '}');
}

#define LOG_RANGE_WHERE                                                                            \
	" FROM events e JOIN messages m ON m.id = e.message"                                       \
	" WHERE e.log_offset > $1::bigint AND e.log_offset <= $2::bigint"                          \
	" AND ($4::text IS NULL OR m.owner = $4"                                                   \
	"      OR " M_SENDER_DOMAIN " = ANY($5::text[]))"                                          \
	" ORDER BY e.log_offset LIMIT $3::int"
#define LOG_RANGE_STMT "msgstatus_log_range"
#define LOG_RANGE_SQL  "SELECT " LOGGED_COLUMNS LOG_RANGE_WHERE
/* store_log_scan's: the same rows without what only the publisher needs (the message's
   id, owner and sender), which is a third of what PostgreSQL sends per event */
#define LOG_SCAN_COLUMNS                                                                           \
	"e.log_offset, e.event_id, e.event_time, e.type, e.rcpt, e.details,"                       \
	" m.tracking_id, m.message_id"
#define LOG_SCAN_STMT "msgstatus_log_scan"
#define LOG_SCAN_SQL  "SELECT " LOG_SCAN_COLUMNS LOG_RANGE_WHERE

/* Whether a failed result is "no such prepared statement" (SQLSTATE 26000). */
static bool
no_such_statement(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return PQresultStatus(res) == PGRES_FATAL_ERROR && state != NULL &&
	       strcmp(state, "26000") == 0;
}

/*
 * The query of store_log_range and store_log_scan; the caller checks and clears it. A
 * catch-up asks it once per page, and planning it (the events partitions and their
 * indexes) cost as much as running it, so outside a transaction it is a prepared
 * statement of the connection, prepared the first time it is missing (a new connection).
 */
static PGresult *
log_range_query(PGconn *conn, const char *stmt, const char *sql, int64_t after, int64_t upto,
                int limit, const char *user, char *const *domains, size_t ndomains)
{
	struct mbuf dom = MBUF_INIT;
	char a[32], u[32], l[16];
	const char *params[5] = {a, u, l, user, NULL};
	PGresult *res;

	snprintf(a, sizeof(a), "%lld", (long long)after);
	snprintf(u, sizeof(u), "%lld", (long long)upto);
	snprintf(l, sizeof(l), "%d", limit);
	/* the domains as a PostgreSQL text[] literal; domain names need no quoting beyond this */
	store_text_array(&dom, domains, ndomains);
	params[4] = mbuf_str(&dom);
	if (PQtransactionStatus(conn) != PQTRANS_IDLE)
		res = PQexecParams(conn, sql, 5, NULL, params, NULL, NULL, 1);
	else {
		res = PQexecPrepared(conn, stmt, 5, params, NULL, NULL, 1);
		if (no_such_statement(res)) {
			PQclear(res);
			res = PQprepare(conn, stmt, sql, 5, NULL);
			if (PQresultStatus(res) == PGRES_COMMAND_OK) {
				PQclear(res);
				res = PQexecPrepared(conn, stmt, 5, params, NULL, NULL, 1);
			}
		}
	}
	mbuf_free(&dom);
	return res;
}

int
store_log_range(PGconn *conn, int64_t after, int64_t upto, int limit, const char *user,
                char *const *domains, size_t ndomains, struct store_logged **logged_r, size_t *n_r,
                bool *transient_r, const char **error_r)
{
	PGresult *res = log_range_query(conn, LOG_RANGE_STMT, LOG_RANGE_SQL, after, upto, limit,
	                                user, domains, ndomains);

	*transient_r = false;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		return -1;
	}
	*logged_r = store_logged_from(res, n_r);
	PQclear(res);
	return 0;
}

int
store_log_scan(PGconn *conn, int64_t after, int64_t upto, int limit, const char *user,
               char *const *domains, size_t ndomains,
               void (*fn)(void *ctx, const struct store_logged *l), void *ctx, size_t *n_r,
               bool *transient_r, const char **error_r)
{
	PGresult *res = log_range_query(conn, LOG_SCAN_STMT, LOG_SCAN_SQL, after, upto, limit, user,
	                                domains, ndomains);
	struct store_logged l = {0};
	int n;

	*transient_r = false;
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		*error_r = store_error(conn, res);
		*transient_r = store_transient(conn, res);
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		scan_row(res, i, &l);
		fn(ctx, &l);
	}
	*n_r = (size_t)n;
	PQclear(res);
	return 0;
}

int
store_log_head(PGconn *conn, int64_t *head_r, int64_t *epoch_r, const char **error_r)
{
	PGresult *res = PQexec(conn, "SELECT head, epoch FROM log_head");
	int rc = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		*head_r = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		*epoch_r = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
		rc = 0;
	} else
		*error_r = store_error(conn, res);
	PQclear(res);
	return rc;
}

int
store_log_listen(PGconn *conn, const char **error_r)
{
	return store_exec(conn, "LISTEN msgstatus_log", NULL, error_r);
}
