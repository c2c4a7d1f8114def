/*
 * ingest - statusd's event socket. See ingest.h and docs/protocol.md.
 */
#include "ingest_int.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dbworker.h"
#include "mbuf.h"
#include "msevent.h"
#include "msg.h"
#include "mymalloc.h"
#include "rfc3339.h"
#include "sdconfig.h"
#include "store.h"
#include "utf8.h"

#define READ_CHUNK      65536
#define WRITE_QUEUE_MAX (1024 * 1024) /* replies the client has not read: stop reading */
#define SLOTS_MAX       20000         /* records awaiting their reply on one connection */
#define REJECT_LOG_MAX  10            /* rejected records logged per connection */
#define FUTURE_SLACK_MS 86400000LL    /* events may be dated up to a day ahead */
#define ERROR_TEXT_MAX  300

static void ingest_release(struct ingest *ing);
static void on_handle_closed(uv_handle_t *handle);

/* --- replies ------------------------------------------------------------------------- */

struct write_req {
	uv_write_t req;
	struct conn *conn;
	size_t len;
	char data[];
};

static void
on_written(uv_write_t *req, int status)
{
	struct write_req *w = (struct write_req *)req;
	struct conn *c = w->conn;

	c->write_queue -= w->len;
	c->refs--;
	free(w);
	if (status < 0 && !c->closed) {
		msg_warn("events: %s: cannot send replies: %s", c->peer, uv_strerror(status));
		c->eof = true;
	}
	if (!c->closed && !c->blocked && !c->reading && !c->eof && c->write_queue < WRITE_QUEUE_MAX)
		ingest_conn_process(c);
	ingest_conn_maybe_close(c);
}

/* Send the replies that are ready, in order. */
void
ingest_conn_flush(struct conn *c)
{
	struct mbuf out = MBUF_INIT;
	struct write_req *w;
	uv_buf_t buf;

	while (c->count > 0 && c->slots[c->head].state != SLOT_WAIT) {
		struct slot *s = &c->slots[c->head];
		if (c->is_source) {
			/* nobody to answer: count, and log what the database refused */
			if (s->state == SLOT_ACK)
				c->acked++;
			else if (s->error != NULL &&
			         strncmp(s->error, "rejected by the database", 24) == 0)
				msg_warn("events: %s: record %llu: %s", c->peer,
				         (unsigned long long)s->seq, s->error);
			free(s->error);
			s->error = NULL;
		} else if (s->state == SLOT_ACK) {
			mbuf_printf(&out, "{\"seq\":%llu,\"ack\":\"%s\"%s}\n",
			            (unsigned long long)s->seq, s->id,
			            s->mdn == MDN_REPLY_SEND  ? ",\"mdn\":\"send\""
			            : s->mdn == MDN_REPLY_NOT ? ",\"mdn\":\"none\""
			                                      : "");
		} else {
			struct json_object *e = json_object_new_string(s->error);
			mbuf_printf(&out, "{\"seq\":%llu,\"error\":%s}\n",
			            (unsigned long long)s->seq,
			            json_object_to_json_string_ext(
			                    e, JSON_C_TO_STRING_PLAIN |
			                               JSON_C_TO_STRING_NOSLASHESCAPE));
			json_object_put(e);
			free(s->error);
			s->error = NULL;
		}
		c->head++;
		c->count--;
	}
	if (c->count == 0)
		c->head = 0;
	if (out.len == 0 || c->closed || c->is_source) {
		mbuf_free(&out);
		return;
	}
	w = mymalloc(sizeof(*w) + out.len);
	memcpy(w->data, out.data, out.len);
	w->len = out.len;
	w->conn = c;
	mbuf_free(&out);
	buf = uv_buf_init(w->data, (unsigned)w->len);
	c->write_queue += w->len;
	c->refs++;
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0) {
		c->write_queue -= w->len;
		c->refs--;
		free(w);
		c->eof = true;
	}
}

/* Make a reply slot for the next record. */
static struct slot *
conn_new_slot(struct conn *c)
{
	struct slot *s;

	if (c->head + c->count == c->cap) {
		if (c->head > 0) {
			memmove(c->slots, c->slots + c->head, c->count * sizeof(*c->slots));
			c->head = 0;
		} else {
			c->cap = c->cap ? c->cap * 2 : 64;
			c->slots = myreallocarray(c->slots, c->cap, sizeof(*c->slots));
		}
	}
	s = &c->slots[c->head + c->count++];
	memset(s, 0, sizeof(*s));
	s->seq = ++c->next_seq;
	return s;
}

/* Make s well-formed UTF-8 in place, each broken byte a '?': the reply is JSON, and a
   reason cut at ERROR_TEXT_MAX bytes may end inside a character. */
static void
utf8_mend(char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0, k; i < n; i += k)
		if ((k = utf8_seq_len(s + i, n - i)) == 0) {
			s[i] = '?';
			k = 1;
		}
}

static void
conn_reject(struct conn *c, struct slot *s, const char *why)
{
	s->state = SLOT_NAK;
	s->error = mystrndup(why, ERROR_TEXT_MAX);
	utf8_mend(s->error);
	c->ing->stats.rejected++;
	if (++c->rejected <= REJECT_LOG_MAX)
		msg_warn("events: %s: record %llu rejected: %s%s", c->peer,
		         (unsigned long long)s->seq, why,
		         c->rejected == REJECT_LOG_MAX ? " (not logging more for this client)"
		                                       : "");
}

/* --- reading ------------------------------------------------------------------------- */

/* Handle one complete record of len bytes. Returns false if there is no room for it. */
static void
conn_record(struct conn *c, const char *line, size_t len)
{
	struct ingest *ing = c->ing;
	struct slot *s = conn_new_slot(c);
	struct msevent ev;
	const char *why;
	int64_t now = time_now_ms();
	struct batch *b;
	struct batch_ref *r;

	ing->stats.received++;
	if (len + 1 > (size_t)ing->cfg->ingest_record_max) {
		conn_reject(c, s,
		            errfmt("record too long (%zu bytes, at most %lld)", len + 1,
		                   ing->cfg->ingest_record_max));
		return;
	}
	if (msevent_parse(&ev, ing->tok, line, len, &why) < 0) {
		char clean[96];
		conn_reject(c, s,
		            errfmt("%s (record starts \"%s\")", why,
		                   msg_clean(clean, sizeof(clean), line, len)));
		return;
	}
	if (ev.time_ms < now - ing->cfg->event_retention) {
		conn_reject(c, s,
		            "event time is older than the retention window (event_retention)");
		msevent_clear(&ev);
		return;
	}
	if (ev.time_ms > now + FUTURE_SLACK_MS) {
		conn_reject(c, s, "event time is more than a day in the future");
		msevent_clear(&ev);
		return;
	}
	snprintf(s->id, sizeof(s->id), "%s", ev.id);
	if (ing->filling == NULL)
		ing->filling = ingest_batch_new(ing);
	b = ing->filling;
	r = &b->refs[b->count];
	r->conn = c;
	r->seq = s->seq;
	r->row_start = b->copy.len;
	r->mdn = NULL;
	r->mdn_send = false;
	if (ev.type == MSEV_MDN)
		r->mdn = ingest_mdn_new(&ev); /* decided by the worker, never in the log */
	else
		store_copy_row(&b->copy, b->count, &ev);
	b->inbound |= ev.type == MSEV_INBOUND;
	b->reports |= ev.type == MSEV_REPORT;
	b->fedout |= ev.tracking_id != NULL && (ev.type == MSEV_DELIVERED || ev.type == MSEV_READ ||
	                                        ev.type == MSEV_UNREAD || ev.type == MSEV_EXPUNGED);
	r->row_len = b->copy.len - r->row_start;
	b->count++;
	c->refs++;
	ing->stats.pending++;
	msevent_clear(&ev);
}

/* Can this connection take another record now? */
static bool
conn_has_room(struct conn *c)
{
	if (ingest_batch_full(c->ing)) {
		ingest_batch_submit(c->ing);
		if (ingest_batch_full(c->ing))
			return false;
	}
	return c->count < SLOTS_MAX && c->write_queue < WRITE_QUEUE_MAX;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void
conn_set_reading(struct conn *c, bool on)
{
	if (c->is_source || c->closed || c->eof || on == c->reading)
		return;
	if (on)
		uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
	else
		uv_read_stop((uv_stream_t *)&c->pipe);
	c->reading = on;
}

/* Frame and handle buffered input as far as there is room, then read more if we may. */
void
ingest_conn_process(struct conn *c)
{
	size_t max = (size_t)c->ing->cfg->ingest_record_max;
	size_t pos = 0;

	while (pos < c->in.len) {
		char *nl = memchr(c->in.data + pos, '\n', c->in.len - pos);
		size_t len;

		if (nl == NULL) {
			if (!c->discarding && c->in.len - pos >= max) {
				/* Too long already: answer now, skip to the next newline. */
				c->discarding = true;
				conn_reject(c, conn_new_slot(c),
				            errfmt("record too long (more than %zu bytes)", max));
				c->ing->stats.received++;
			}
			if (c->discarding)
				pos = c->in.len;
			break;
		}
		len = (size_t)(nl - (c->in.data + pos));
		if (c->discarding) {
			c->discarding = false;
			pos += len + 1;
			continue;
		}
		if (!conn_has_room(c)) {
			c->blocked = true;
			break;
		}
		conn_record(c, c->in.data + pos, len);
		pos += len + 1;
	}
	mbuf_consume(&c->in, pos);
	ingest_conn_flush(c);
	if (c->eof && c->in.len > 0 && !c->blocked && !c->discarding) {
		/* the last record had no newline: it is incomplete */
		struct slot *s = conn_new_slot(c);
		c->ing->stats.received++;
		conn_reject(c, s, "incomplete record at end of stream (no newline)");
		mbuf_reset(&c->in);
		ingest_conn_flush(c);
	}
	conn_set_reading(c, !c->blocked && !c->ing->shutting_down && c->count < SLOTS_MAX &&
	                            c->write_queue < WRITE_QUEUE_MAX);
	ingest_conn_maybe_close(c);
}

static void
on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = handle->data;

	mbuf_reserve(&c->in, READ_CHUNK);
	*buf = uv_buf_init(c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void
on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;

	if (nread > 0) {
		c->in.len += (size_t)nread;
		c->in.data[c->in.len] = '\0';
	} else if (nread < 0) {
		if (nread != UV_EOF)
			msg_warn("events: %s: read error: %s", c->peer, uv_strerror((int)nread));
		conn_set_reading(c, false);
		c->eof = true;
	} else
		return;
	ingest_conn_process(c);
}

/* --- connections --------------------------------------------------------------------- */

static void
on_closed(uv_handle_t *handle)
{
	struct conn *c = handle->data;

	c->refs--;
	ingest_conn_maybe_close(c);
}

/*
 * Close once the client is done and every reply is written; free once nothing refers to
 * the connection. A connection that broke is closed at once; its unacknowledged events
 * are still stored, and the producer will resend them (duplicates are harmless).
 */
void
ingest_conn_maybe_close(struct conn *c)
{
	struct ingest *ing = c->ing;

	if (c->is_source) {
		/* done once every record is answered; a source is never "closed" by a peer */
		if (!c->closed && c->eof && !c->blocked && c->count == 0 && c->in.len == 0) {
			c->closed = true;
			c->refs--;
			c->source_done(c->source_ctx, c->acked, c->rejected);
		}
		if (!c->closed || c->refs > 0)
			return;
		if (c->prev)
			c->prev->next = c->next;
		else
			ing->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		free(c->slots);
		mbuf_free(&c->in);
		free(c);
		return;
	}

	if (!c->closed && c->eof && !c->blocked && c->count == 0 && c->write_queue == 0) {
		c->closed = true;
		c->reading = false;
		if (c->rejected > REJECT_LOG_MAX)
			msg_warn("events: %s: %u records rejected in all", c->peer, c->rejected);
		msg_debug("events: %s: disconnected", c->peer);
		uv_close((uv_handle_t *)&c->pipe, on_closed);
		return;
	}
	if (c->closed && c->refs == 0) {
		if (c->prev)
			c->prev->next = c->next;
		else
			ing->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		ing->stats.connections--;
		for (size_t i = 0; i < c->count; i++)
			free(c->slots[c->head + i].error);
		free(c->slots);
		mbuf_free(&c->in);
		free(c);
		ing->handles--;
		ingest_release(ing);
	}
}

static void
on_connection(uv_stream_t *server, int status)
{
	struct ingest *ing = server->data;
	struct conn *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	uv_os_fd_t fd;

	if (status < 0) {
		msg_warn("events: accept: %s", uv_strerror(status));
		return;
	}
	c = mycalloc(1, sizeof(*c));
	c->ing = ing;
	uv_pipe_init(ing->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0) {
		uv_close((uv_handle_t *)&c->pipe, (uv_close_cb)free);
		return;
	}
	c->refs = 1;
	ing->handles++;
	snprintf(c->peer, sizeof(c->peer), "client");
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
		snprintf(c->peer, sizeof(c->peer), "client pid=%ld uid=%ld", (long)cred.pid,
		         (long)cred.uid);
	c->next = ing->conns;
	if (ing->conns)
		ing->conns->prev = c;
	ing->conns = c;
	ing->stats.connections++;
	msg_debug("events: %s: connected", c->peer);
	conn_set_reading(c, true);
}

/* Bind the socket, refusing to steal it from a running statusd. */
static void
listen_socket(struct ingest *ing)
{
	const char *path = ing->cfg->events_socket;
	struct sockaddr_un sun;
	struct stat st;
	mode_t old_umask;
	int rc, fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		msg_fatal("events_socket: path too long: %s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			msg_fatal("events_socket %s exists and is not a socket", path);
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, path, strlen(path));
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			msg_fatal("events_socket %s: another statusd is listening there", path);
		if (fd >= 0)
			close(fd);
		if (unlink(path) < 0)
			msg_fatal("remove stale events_socket %s: %s", path, strerror(errno));
	}
	uv_pipe_init(ing->loop, &ing->server, 0);
	ing->server.data = ing;
	ing->handles++;
	old_umask = umask(0177);
	rc = uv_pipe_bind(&ing->server, path);
	umask(old_umask);
	if (rc < 0)
		msg_fatal("events_socket %s: bind: %s", path, uv_strerror(rc));
	if (chmod(path, ing->cfg->socket_mode) < 0)
		msg_fatal("events_socket %s: chmod: %s", path, strerror(errno));
	if (ing->cfg->socket_gid != (gid_t)-1 && chown(path, (uid_t)-1, ing->cfg->socket_gid) < 0)
		msg_fatal("events_socket %s: chown: %s", path, strerror(errno));
	if ((rc = uv_listen((uv_stream_t *)&ing->server, 128, on_connection)) < 0)
		msg_fatal("events_socket %s: listen: %s", path, uv_strerror(rc));
	ing->server_open = true;
	msg_info("events: listening on %s", path);
}

struct ingest *
ingest_start(uv_loop_t *loop, const struct sd_config *cfg, struct dbworker *db)
{
	struct ingest *ing = mycalloc(1, sizeof(*ing));

	ing->loop = loop;
	ing->cfg = cfg;
	ing->db = db;
	ing->tok = msevent_tokener_new();
	uv_check_init(loop, &ing->check);
	ing->check.data = ing;
	ing->handles++;
	uv_check_start(&ing->check, ingest_on_check);
	listen_socket(ing);
	return ing;
}

void
ingest_shutdown(struct ingest *ing, void (*done)(void *), void *ctx)
{
	ing->shutting_down = true;
	if (ing->server_open) {
		uv_close((uv_handle_t *)&ing->server, on_handle_closed);
		unlink(ing->cfg->events_socket);
		ing->server_open = false;
	}
	for (struct conn *c = ing->conns; c != NULL; c = c->next)
		conn_set_reading(c, false);
	ingest_batch_submit(ing);
	if (ing->inflight == NULL) {
		done(ctx);
		return;
	}
	ing->shutdown_done = done;
	ing->shutdown_ctx = ctx;
}

static void
ingest_release(struct ingest *ing)
{
	if (!ing->freeing || ing->handles > 0)
		return;
	if (ing->filling)
		ingest_batch_free(ing->filling);
	json_tokener_free(ing->tok);
	free(ing);
}

static void
on_handle_closed(uv_handle_t *handle)
{
	struct ingest *ing = handle->data;

	ing->handles--;
	ingest_release(ing);
}

void
ingest_free(struct ingest **ingp)
{
	struct ingest *ing = *ingp;

	if (ing == NULL)
		return;
	*ingp = NULL;
	ing->freeing = true;
	ing->shutting_down = true;
	if (ing->server_open) {
		uv_close((uv_handle_t *)&ing->server, on_handle_closed);
		unlink(ing->cfg->events_socket);
		ing->server_open = false;
	}
	/* Close what is left; an unacknowledged event will be resent by its producer. A batch
	   never stored lets go of its connections first, so that they can be freed. */
	if (ing->filling != NULL) {
		struct batch *b = ing->filling;

		ing->filling = NULL;
		for (int i = 0; i < b->count; i++) {
			struct conn *c = b->refs[i].conn;

			c->refs--;
			if (c->closed && c->refs == 0)
				ingest_conn_maybe_close(c);
		}
		ingest_batch_free(b);
	}
	for (struct conn *c = ing->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (c->is_source) {
			/* unfinished: its file stays and is picked up again next time */
			for (size_t i = 0; i < c->count; i++)
				free(c->slots[c->head + i].error);
			c->count = 0;
			c->closed = true;
			c->refs = 0;
			ingest_conn_maybe_close(c);
		} else if (!c->closed) {
			c->closed = true;
			uv_close((uv_handle_t *)&c->pipe, on_closed);
		}
	}
	uv_close((uv_handle_t *)&ing->check, on_handle_closed);
	/* The rest is freed by the close callbacks, on the loop's next run. */
}

void
ingest_source_start(struct ingest *ing, const char *name, const char *data, size_t len,
                    void (*done)(void *ctx, unsigned acked, unsigned rejected), void *ctx)
{
	struct conn *c = mycalloc(1, sizeof(*c));

	c->ing = ing;
	c->is_source = true;
	c->eof = true;
	c->refs = 1;
	c->source_done = done;
	c->source_ctx = ctx;
	snprintf(c->peer, sizeof(c->peer), "%s", name);
	mbuf_append(&c->in, data, len);
	c->next = ing->conns;
	if (ing->conns)
		ing->conns->prev = c;
	ing->conns = c;
	ingest_conn_process(c);
}

void
ingest_on_logged(struct ingest *ing, void (*fn)(void *, const struct store_logged *, size_t),
                 void *ctx)
{
	ing->on_logged = fn;
	ing->on_logged_ctx = ctx;
}

void
ingest_stats(const struct ingest *ing, struct ingest_stats *out)
{
	*out = ing->stats;
}
