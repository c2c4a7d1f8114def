/*
 * feed - the live feeds. See feed.h.
 *
 * SECURITY
 *	What a subscriber may see is decided here, once per event, with principal_may_see();
 *	the transports only carry what the feed hands them. Catch-up reads from PostgreSQL
 *	are filtered by the same rule in SQL (store_log_scan, store_log_range).
 */
#include "feed.h"

#include <json-c/json.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <unistd.h>

#include "auth.h"
#include "dbworker.h"
#include "feedindex.h"
#include "feedmsg.h"
#include "mbuf.h"
#include "msg.h"
#include "mymalloc.h"
#include "sdconfig.h"
#include "store.h"

#define PAGE_SPAN       2000   /* log offsets per catch-up page, so at most that many events */
#define CATCHUP_WATER   262144 /* bytes queued before a catch-up pauses */
#define NOTIFY_DELAY_MS 20     /* let our own batch publish before reading others' */
#define PUBLISH_CHUNK   1024   /* events published before their fan-out (< FEED_RING) */

struct ring_entry {
	struct feed_msg *msg;
	char *owner;
	char *sender;
};

/* A read of the log from PostgreSQL. */
enum fetch_kind {
	FETCH_HEAD, /* where is the log (at start, and after the listener reconnected) */
	FETCH_GAP,  /* events (after, upto] for everyone, to publish */
	FETCH_PAGE, /* a subscriber's catch-up page */
};

struct feed_fetch {
	struct dbjob job;
	enum fetch_kind kind;
	struct feed *feed;
	struct feed_sub *sub; /* FETCH_PAGE; cleared if the subscriber goes away */
	bool read;            /* FETCH_PAGE: done, waiting in sub->pages */
	int64_t after, upto;  /* fixed once submitted (the worker reads them) */
	int limit;
	int64_t epoch_in; /* FETCH_PAGE: the log's epoch, for the records */
	char *user;
	char **domains;
	size_t ndomains;
	/* results */
	struct store_logged *rows; /* FETCH_HEAD, FETCH_GAP */
	size_t nrows;
	struct feed_msg **msgs; /* FETCH_PAGE: the records, formatted by the worker */
	size_t nmsgs, msgs_cap;
	struct feed_slab *slab; /* FETCH_PAGE: their memory */
	struct mbuf scratch;    /* the worker's formatting buffer */
	int64_t head, epoch;
	bool ok;
	char error[300];
};

/* What the first feed hands another loop's feed, in log order: the head, then each event
   it publishes, as copies of its own (message and strings). */
struct feed_item {
	struct feed_msg *msg; /* NULL: the log's head (published, epoch) */
	char *owner, *sender;
	int64_t published, epoch;
};

struct pending_sub {
	struct feed_sub *sub;
	int64_t from, epoch;
};

struct feed {
	uv_loop_t *loop;
	const struct sd_config *cfg;
	struct dbworker *db;
	struct dbworker *page_db[2]; /* catch-up pages, in turn */
	unsigned next_page_db;
	bool head_known;
	int64_t published, epoch;
	struct ring_entry ring[FEED_RING];
	int64_t ring_lo;         /* the oldest offset in the ring (published + 1 when empty) */
	struct feed_index *live; /* the live subscribers */
	struct feed_sub *subs;
	struct pending_sub *pending; /* subscribed before the head was known */
	size_t npending;
	bool gap_running;
	int64_t gap_want;        /* publish up to here */
	unsigned jobs;           /* fetches submitted and not done */
	struct mbuf scratch;     /* formatting buffer for published events (loop thread) */
	struct feed_stats stats; /* read by the first loop's feed_stats(): atomic builtins */
	bool freeing;
	unsigned handles;

	/* feed loops (feedloop.h): the first feed hands every other its head and events */
	struct feed *first;     /* another loop's feed: the one it follows; NULL: the first */
	struct feed **replicas; /* the first: the other loops' feeds */
	size_t nreplicas;
	struct feed_item *outbox; /* the first: this publish_rows()'s events, for them */
	size_t noutbox, outbox_cap;
	pthread_mutex_t inbox_lock; /* another loop's feed: what the first handed it */
	struct feed_item *inbox;
	size_t ninbox, inbox_cap;
	uv_async_t inbox_async;

	/* the listener thread: LISTEN msgstatus_log on its own connection */
	pthread_t listener;
	atomic_bool listener_stop;
	_Atomic int64_t notified_head; /* the highest head announced; -1: read it */
	uv_async_t async;
	uv_timer_t notify_timer;
	uv_timer_t retry_timer; /* the start-up read of the head, again */
	bool head_warned;
	char *conninfo;
};

/* Counters that the first loop's feed_stats() reads on every loop's feed. Only the feed's
   own loop writes them, so a relaxed load and store will do (no read-modify-write). */
#define STAT_ADD(f, field, n)                                                                      \
	__atomic_store_n(&(f)->stats.field,                                                        \
	                 __atomic_load_n(&(f)->stats.field, __ATOMIC_RELAXED) + (n),               \
	                 __ATOMIC_RELAXED)
#define STAT_SUB(f, field, n)                                                                      \
	__atomic_store_n(&(f)->stats.field,                                                        \
	                 __atomic_load_n(&(f)->stats.field, __ATOMIC_RELAXED) - (n),               \
	                 __ATOMIC_RELAXED)

static void feed_catch_up(struct feed_sub *sub);
static void want_up_to(struct feed *f, int64_t upto);
static void on_retry(uv_timer_t *t);
static void feed_release(struct feed *f);

/* --- live subscribers ------------------------------------------------------------------ */

static void
go_live(struct feed_sub *sub)
{
	struct feed *f = sub->feed;

	sub->state = SUB_LIVE;
	feed_index_enter(f->live, sub);
	STAT_ADD(f, live, 1);
}

static void
leave_live(struct feed_sub *sub)
{
	if (sub->state != SUB_LIVE)
		return;
	feed_index_leave(sub);
	STAT_SUB(sub->feed, live, 1);
}

/* --- sending ------------------------------------------------------------------------- */

static void
close_sub(struct feed_sub *sub, const char *why)
{
	char reason[160];

	snprintf(reason, sizeof(reason), "%s; resume from offset %lld", why,
	         (long long)sub->position);
	leave_live(sub);
	sub->state = SUB_CLOSED;
	sub->ops->close(sub, reason);
}

/* Hand one event to a subscriber. */
static void
deliver(struct feed_sub *sub, struct feed_msg *m)
{
	struct feed *f = sub->feed;
	size_t queued;

	if (m->offset <= sub->position)
		return; /* had it already (a user who is also an admin of the domain) */
	queued = sub->ops->push(sub, m);
	sub->position = m->offset;
	STAT_ADD(f, sent, 1);
	if (sub->state == SUB_LIVE && queued > (size_t)f->cfg->feed_buffer_max) {
		STAT_ADD(f, slow_closed, 1);
		close_sub(sub, "slow consumer: too much unsent");
	} else if (sub->state == SUB_CATCHUP && queued > CATCHUP_WATER)
		sub->paused = true;
}

static void
fan_list(struct feed_link *l, struct feed_msg *m)
{
	for (struct feed_link *next; l; l = next) {
		next = l->next; /* deliver() may unlink l */
		deliver(l->sub, m);
	}
}

/* Fan an event out to the live subscribers who may see it. */
static void
fan_out(struct feed *f, struct feed_msg *m, const char *owner, const char *sender)
{
	fan_list(feed_index_user(f->live, owner), m);
	fan_list(feed_index_domain(f->live, sender), m);
}

/* --- the other loops' feeds ------------------------------------------------------------ */

static void
item_clear(struct feed_item *it)
{
	feed_msg_unref(&it->msg);
	free(it->owner);
	free(it->sender);
}

/* The first feed: an event for the other loops, handed over at the end of the batch. */
static void
outbox_add(struct feed *f, struct feed_msg *m, const char *owner, const char *sender)
{
	if (f->noutbox == f->outbox_cap) {
		f->outbox_cap = f->outbox_cap ? 2 * f->outbox_cap : 256;
		f->outbox = myreallocarray(f->outbox, f->outbox_cap, sizeof(*f->outbox));
	}
	f->outbox[f->noutbox++] = (struct feed_item){m, (char *)owner, (char *)sender, 0, 0};
}

/* Hand items to another loop's feed: one lock and one wake-up per batch, not per event
   or subscriber. The messages and strings are copied (feedmsg.h: a count is never shared
   between threads). */
static void
inbox_put(struct feed *r, const struct feed_item *items, size_t n)
{
	pthread_mutex_lock(&r->inbox_lock);
	if (r->ninbox + n > r->inbox_cap) {
		r->inbox_cap = r->ninbox + n > 2 * r->inbox_cap ? r->ninbox + n : 2 * r->inbox_cap;
		r->inbox = myreallocarray(r->inbox, r->inbox_cap, sizeof(*r->inbox));
	}
	for (size_t i = 0; i < n; i++) {
		struct feed_item *it = &r->inbox[r->ninbox++];
		*it = items[i];
		if (it->msg != NULL)
			it->msg = feed_msg_copy(it->msg);
		it->owner = items[i].owner ? mystrdup(items[i].owner) : NULL;
		it->sender = items[i].sender ? mystrdup(items[i].sender) : NULL;
	}
	pthread_mutex_unlock(&r->inbox_lock);
	uv_async_send(&r->inbox_async);
}

static void
outbox_flush(struct feed *f)
{
	if (f->noutbox == 0)
		return;
	for (size_t i = 0; i < f->nreplicas; i++)
		inbox_put(f->replicas[i], f->outbox, f->noutbox);
	f->noutbox = 0; /* the messages are the ring's, the strings the batch's */
}

static void start_subscription(struct feed_sub *sub, int64_t from, int64_t epoch);
static void head_known(struct feed *f, int64_t head, int64_t epoch);

/* Another loop's feed: the first one's head or events, in the order it published them. */
static void
replica_take(struct feed *f, struct feed_item *it)
{
	struct ring_entry *e;

	if (it->msg == NULL) {
		if (!f->head_known)
			head_known(f, it->published, it->epoch);
		return;
	}
	if (!f->head_known || it->msg->offset <= f->published)
		return; /* from before this loop's feed knew the head */
	if (it->msg->offset != f->published + 1)
		msg_panic("feed: a feed loop got offset %lld after %lld",
		          (long long)it->msg->offset, (long long)f->published);
	e = &f->ring[it->msg->offset % FEED_RING];
	feed_msg_unref(&e->msg);
	free(e->owner);
	free(e->sender);
	e->msg = it->msg;
	e->owner = it->owner;
	e->sender = it->sender;
	it->msg = NULL;
	it->owner = it->sender = NULL;
	f->published = e->msg->offset;
	if (f->published - f->ring_lo >= FEED_RING)
		f->ring_lo = f->published - FEED_RING + 1;
	STAT_ADD(f, published, 1);
	fan_out(f, e->msg, e->owner, e->sender);
}

static void
on_inbox(uv_async_t *a)
{
	struct feed *f = a->data;
	struct feed_item *items;
	size_t n;

	pthread_mutex_lock(&f->inbox_lock);
	items = f->inbox;
	n = f->ninbox;
	f->inbox = NULL;
	f->ninbox = f->inbox_cap = 0;
	pthread_mutex_unlock(&f->inbox_lock);
	for (size_t i = 0; i < n; i++) {
		if (!f->freeing)
			replica_take(f, &items[i]);
		item_clear(&items[i]);
	}
	free(items);
}

/*
 * Publish events that follow `published` without a gap; on a gap, read it first. Up to
 * PUBLISH_CHUNK events at a time go into the ring and to the other loops first, and only
 * then out to this loop's subscribers, so that every loop does its share of a fan-out at
 * the same time.
 */
static void
publish_rows(struct feed *f, const struct store_logged *rows, size_t n)
{
	bool gap = false;
	size_t i = 0;

	while (i < n && !gap) {
		int64_t from = f->published;

		for (size_t taken = 0; i < n && taken < PUBLISH_CHUNK; i++) {
			const struct store_logged *l = &rows[i];
			struct ring_entry *e;
			struct feed_msg *m;

			if (l->log_offset <= f->published)
				continue; /* read from the database meanwhile */
			if (l->log_offset != f->published + 1) {
				gap = true;
				break;
			}
			m = feed_msg_new(l, f->epoch, &f->scratch);
			e = &f->ring[l->log_offset % FEED_RING];
			feed_msg_unref(&e->msg);
			free(e->owner);
			free(e->sender);
			e->msg = m;
			e->owner = l->owner ? strdup(l->owner) : NULL;
			e->sender = l->sender ? strdup(l->sender) : NULL;
			f->published = l->log_offset;
			if (f->published - f->ring_lo >= FEED_RING)
				f->ring_lo = f->published - FEED_RING + 1;
			STAT_ADD(f, published, 1);
			if (f->nreplicas > 0)
				outbox_add(f, m, l->owner, l->sender);
			taken++;
		}
		outbox_flush(f);
		for (int64_t o = from + 1; o <= f->published; o++) {
			struct ring_entry *e = &f->ring[o % FEED_RING];
			fan_out(f, e->msg, e->owner, e->sender);
		}
	}
	if (gap)
		want_up_to(f, rows[n - 1].log_offset);
}

void
feed_publish(struct feed *f, const struct store_logged *logged, size_t n)
{
	if (!f->head_known || f->freeing || n == 0)
		return; /* not started yet: subscribers will read the database */
	if (f->gap_running) {
		want_up_to(f, logged[n - 1].log_offset); /* read in order after the gap */
		return;
	}
	publish_rows(f, logged, n);
}

/* --- reading the log from PostgreSQL -------------------------------------------------- */

/* One row of a catch-up page, formatted here on the worker thread (store_log_scan). */
static void
page_row(void *ctx, const struct store_logged *l)
{
	struct feed_fetch *x = ctx;

	if (x->nmsgs == x->msgs_cap) {
		x->msgs_cap = x->msgs_cap ? 2 * x->msgs_cap : (size_t)x->limit;
		x->msgs = myreallocarray(x->msgs, x->msgs_cap, sizeof(*x->msgs));
	}
	if (x->slab == NULL)
		x->slab = feed_slab_new();
	x->msgs[x->nmsgs++] = feed_msg_new_in(x->slab, l, x->epoch_in, &x->scratch);
}

/* Drop the page's records; those the transport still holds keep their memory. */
static void
page_clear(struct feed_fetch *x)
{
	for (size_t i = 0; i < x->nmsgs; i++)
		feed_msg_unref(&x->msgs[i]);
	x->nmsgs = 0;
	feed_slab_release(&x->slab);
}

static enum dbw_result
fetch_run(struct dbjob *job, PGconn *conn)
{
	struct feed_fetch *x = (struct feed_fetch *)job;
	const char *error;
	bool transient = false;
	size_t n;

	if (x->kind == FETCH_HEAD) {
		if (store_log_head(conn, &x->head, &x->epoch, &error) == 0)
			x->ok = true;
	} else if (x->kind == FETCH_PAGE) {
		page_clear(x); /* from a run that failed */
		if (store_log_scan(conn, x->after, x->upto, x->limit, x->user, x->domains,
		                   x->ndomains, page_row, x, &n, &transient, &error) == 0)
			x->ok = true;
	} else if (store_log_range(conn, x->after, x->upto, x->limit, x->user, x->domains,
	                           x->ndomains, &x->rows, &x->nrows, &transient, &error) == 0)
		x->ok = true;
	if (!x->ok)
		snprintf(x->error, sizeof(x->error), "%s", error);
	return !x->ok && PQstatus(conn) != CONNECTION_OK ? DBW_RETRY : DBW_DONE;
}

static void fetch_done(struct dbjob *job);

static struct feed_fetch *
fetch_new(struct feed *f, struct dbworker *db, enum fetch_kind kind, int64_t after, int64_t upto,
          int limit, const struct principal *p)
{
	struct feed_fetch *x = mycalloc(1, sizeof(*x));

	x->kind = kind;
	x->feed = f;
	x->after = after;
	x->upto = upto;
	x->limit = limit;
	x->epoch_in = f->epoch;
	if (p != NULL) {
		x->user = mystrdup(p->user);
		if (p->nadmin)
			x->domains = mycalloc(p->nadmin, sizeof(char *));
		for (size_t i = 0; i < p->nadmin; i++)
			x->domains[i] = mystrdup(p->admin_domains[i]);
		x->ndomains = p->nadmin;
	}
	x->job.run = fetch_run;
	x->job.done = fetch_done;
	/* fail fast: a retrying job would hold up the query worker's other work (health,
	   the API); the feed tries again on its own timer */
	x->job.no_retry = true;
	f->jobs++;
	dbworker_submit(db, &x->job);
	return x;
}

static void
fetch_free(struct feed_fetch *x)
{
	if (x == NULL)
		return;
	page_clear(x);
	free(x->msgs);
	mbuf_free(&x->scratch);
	store_logged_free(x->rows, x->nrows);
	for (size_t i = 0; i < x->ndomains; i++)
		free(x->domains[i]);
	free(x->domains);
	free(x->user);
	free(x);
}

/* Publish (published, upto] for everyone; read it from the database if needed. */
static void
want_up_to(struct feed *f, int64_t upto)
{
	if (upto > f->gap_want)
		f->gap_want = upto;
	if (f->gap_running || f->freeing || f->gap_want <= f->published)
		return;
	f->gap_running = true;
	fetch_new(f, f->db, FETCH_GAP, f->published, f->gap_want, 10000, NULL);
}

static void
on_retry(uv_timer_t *t)
{
	struct feed *f = t->data;

	if (f->freeing)
		return;
	if (f->first != NULL)
		return; /* the first feed reads the log for every loop */
	if (!f->head_known)
		fetch_new(f, f->db, FETCH_HEAD, 0, 0, 0, NULL);
	else
		want_up_to(f, f->gap_want);
}

static void
head_done(struct feed *f, struct feed_fetch *x)
{
	if (!x->ok) {
		/* no database or no schema yet: ask again in a while */
		uv_timer_start(&f->retry_timer, on_retry, 500, 0);
		return;
	}
	if (f->head_known) {
		want_up_to(f, x->head); /* after a listener reconnect */
		return;
	}
	head_known(f, x->head, x->epoch);
}

/* Where the log is, once known: start the subscriptions that waited for it. */
static void
head_known(struct feed *f, int64_t head, int64_t epoch)
{
	f->epoch = epoch;
	f->published = f->gap_want = head;
	f->ring_lo = f->published + 1;
	f->head_known = true;
	if (f->first == NULL) {
		struct feed_item it = {.published = head, .epoch = epoch};
		msg_info("feed: the log is at offset %lld (epoch %lld)", (long long)f->published,
		         (long long)f->epoch);
		for (size_t i = 0; i < f->nreplicas; i++)
			inbox_put(f->replicas[i], &it, 1);
	} else {
		/* the schema is in place: this loop's database workers may start */
		dbworker_release(f->db);
		dbworker_release(f->page_db[1]);
	}
	for (size_t i = 0; i < f->npending; i++)
		start_subscription(f->pending[i].sub, f->pending[i].from, f->pending[i].epoch);
	free(f->pending);
	f->pending = NULL;
	f->npending = 0;
}

static void
gap_done(struct feed *f, struct feed_fetch *x)
{
	f->gap_running = false;
	if (!x->ok) {
		uv_timer_start(&f->retry_timer, on_retry, 500, 0); /* read the gap again */
		return;
	}
	publish_rows(f, x->rows, x->nrows);
	if (x->nrows < (size_t)x->limit && f->published < x->upto)
		f->gap_want = f->published; /* nothing more there (yet) */
	want_up_to(f, f->gap_want);
}

/* A page the subscriber no longer wants: free it, or have it freed when its read ends. */
static void
page_forget(struct feed_fetch *x)
{
	if (x->read)
		fetch_free(x);
	else
		x->sub = NULL;
}

/* A catch-up page has been read: the subscriber keeps it (true) until it can take it. */
static bool
page_done(struct feed *f, struct feed_fetch *x)
{
	struct feed_sub *sub = x->sub;

	if (sub == NULL)
		return false; /* the subscriber left */
	if (!x->ok) {
		/* forget every page: none of them will be delivered */
		for (unsigned i = 0; i < sub->npages; i++)
			if (sub->pages[i] != x)
				page_forget(sub->pages[i]);
		sub->npages = 0;
		close_sub(sub, "cannot read the log now (database unavailable)");
		return false;
	}
	x->read = true;
	feed_catch_up(sub);
	return true;
}

static void
fetch_done(struct dbjob *job)
{
	struct feed_fetch *x = (struct feed_fetch *)job;
	struct feed *f = x->feed;

	if (job->failed)
		x->ok = false;
	f->jobs--;
	/* the head unreadable at start-up (the schema is being created) is normal for a
	   moment: say it once, as information; any other failure is a warning */
	if (!x->ok && !job->failed && x->error[0]) {
		if (x->kind == FETCH_HEAD && !f->head_known) {
			if (!f->head_warned)
				msg_info("feed: the event log is not readable yet, retrying: %s",
				         x->error);
			f->head_warned = true;
		} else
			msg_warn("feed: reading the log: %s", x->error);
	}
	if (!f->freeing) {
		switch (x->kind) {
		case FETCH_HEAD:
			head_done(f, x);
			break;
		case FETCH_GAP:
			gap_done(f, x);
			break;
		case FETCH_PAGE:
			if (page_done(f, x))
				x = NULL; /* the subscriber's until delivered */
			break;
		}
	}
	fetch_free(x);
	if (f->freeing)
		feed_release(f);
}

/* --- subscribers --------------------------------------------------------------------- */

/* Hand the first page read ahead to its subscriber. */
static void
deliver_page(struct feed_sub *sub)
{
	struct feed_fetch *x = sub->pages[0];

	memmove(&sub->pages[0], &sub->pages[1], --sub->npages * sizeof(sub->pages[0]));
	for (size_t i = 0; i < x->nmsgs && sub->state == SUB_CATCHUP; i++)
		deliver(sub, x->msgs[i]);
	/* A page holds every visible event of its range (at most PAGE_SPAN of them). */
	if (sub->state == SUB_CATCHUP && sub->position < x->upto)
		sub->position = x->upto;
	fetch_free(x);
}

/* Ask for the next pages up to the ring, while there is room for them. */
static void
ask_pages(struct feed_sub *sub)
{
	struct feed *f = sub->feed;

	if (sub->npages == 0)
		sub->asked = sub->position;
	/* Each page covers at most PAGE_SPAN offsets, so that PostgreSQL reads an index range
	   of that size instead of all the rest of the log for every page; its bounds are known
	   before it is read, so the next page can be read at the same time. */
	while (sub->npages < FEED_PAGES && sub->asked + 1 < f->ring_lo) {
		int64_t upto = f->ring_lo - 1;
		struct feed_fetch *x;

		if (upto - sub->asked > PAGE_SPAN)
			upto = sub->asked + PAGE_SPAN;
		x = fetch_new(f, f->page_db[f->next_page_db++ % 2], FETCH_PAGE, sub->asked, upto,
		              PAGE_SPAN, sub->who);
		x->sub = sub;
		sub->pages[sub->npages++] = x;
		sub->asked = upto;
	}
}

/*
 * Bring a subscriber up to the head — from the ring if it reaches back far enough, else a
 * page at a time from the database — then make it live. Up to FEED_PAGES pages are asked
 * for ahead, in turn on two connections, and a new one as soon as one has been handed to
 * the transport, so both PostgreSQL backends read while the transport sends; the pages
 * are handed over in order, each once the transport has drained (not paused).
 */
static void
feed_catch_up(struct feed_sub *sub)
{
	struct feed *f = sub->feed;

	while (sub->state == SUB_CATCHUP) {
		ask_pages(sub);
		if (sub->npages > 0) {
			if (!sub->pages[0]->read || sub->paused)
				return; /* being read, or waiting for the transport */
			deliver_page(sub);
			continue;
		}
		if (sub->paused)
			return;
		if (sub->position >= f->published) {
			go_live(sub);
			return;
		}
		/* the rest is in memory */
		while (sub->position < f->published && sub->state == SUB_CATCHUP && !sub->paused) {
			struct ring_entry *e = &f->ring[(sub->position + 1) % FEED_RING];
			if (principal_may_see(sub->who, e->owner, e->sender))
				deliver(sub, e->msg);
			else
				sub->position++;
		}
	}
}

static void
start_subscription(struct feed_sub *sub, int64_t from, int64_t epoch)
{
	struct feed *f = sub->feed;
	char hello[200];
	bool reset = false;

	if (from < 0 || epoch == 0)
		from = f->published; /* follow from now */
	else if (epoch != f->epoch || from > f->published) {
		reset = true; /* another log, or an offset it never had: start over */
		from = 0;
	}
	snprintf(hello, sizeof(hello),
	         "{\"type\":\"hello\",\"epoch\":%lld,\"head\":%lld,\"from\":%lld%s}",
	         (long long)f->epoch, (long long)f->published, (long long)from,
	         reset ? ",\"reset\":true" : "");
	sub->ops->control(sub, hello);
	sub->position = from;
	sub->state = SUB_CATCHUP;
	feed_catch_up(sub);
}

void
feed_subscribe(struct feed *f, struct feed_sub *sub, const struct feed_sub_ops *ops,
               const struct principal *who, int64_t from, int64_t epoch)
{
	memset(sub, 0, sizeof(*sub));
	sub->ops = ops;
	sub->feed = f;
	sub->who = principal_dup(who);
	sub->state = SUB_WAITING;
	sub->next = f->subs;
	if (f->subs)
		f->subs->prev = sub;
	f->subs = sub;
	STAT_ADD(f, subscribers, 1);
	if (!f->head_known) {
		f->pending = myreallocarray(f->pending, f->npending + 1, sizeof(*f->pending));
		f->pending[f->npending++] = (struct pending_sub){sub, from, epoch};
		return;
	}
	start_subscription(sub, from, epoch);
}

void
feed_unsubscribe(struct feed_sub *sub)
{
	struct feed *f = sub->feed;

	if (f == NULL)
		return;
	leave_live(sub);
	for (unsigned i = 0; i < sub->npages; i++)
		page_forget(sub->pages[i]);
	sub->npages = 0;
	for (size_t i = 0; i < f->npending; i++)
		if (f->pending[i].sub == sub)
			f->pending[i--] = f->pending[--f->npending];
	if (sub->prev)
		sub->prev->next = sub->next;
	else
		f->subs = sub->next;
	if (sub->next)
		sub->next->prev = sub->prev;
	STAT_SUB(f, subscribers, 1);
	principal_free(&sub->who);
	sub->state = SUB_CLOSED;
	sub->feed = NULL;
}

void
feed_sub_drained(struct feed_sub *sub)
{
	if (sub->feed == NULL || sub->state != SUB_CATCHUP)
		return;
	sub->paused = false;
	feed_catch_up(sub);
}

/* --- other instances: LISTEN msgstatus_log -------------------------------------------- */

static void *
listener_main(void *arg)
{
	struct feed *f = arg;
	PGconn *conn = NULL;
	const char *error;

	while (!atomic_load(&f->listener_stop)) {
		struct timeval tv = {0, 200000};
		int64_t best = 0;
		PGnotify *n;
		fd_set rfds;
		int fd;

		if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
			if (conn != NULL)
				PQfinish(conn);
			conn = PQconnectdb(f->conninfo);
			if (PQstatus(conn) != CONNECTION_OK) {
				PQfinish(conn);
				conn = NULL;
				for (int i = 0; i < 10 && !atomic_load(&f->listener_stop); i++)
					usleep(100000);
				continue;
			}
			(void)store_log_listen(conn, &error);
			/* (re)connected: what was announced meanwhile is read from the log */
			atomic_store(&f->notified_head, -1);
			uv_async_send(&f->async);
		}
		fd = PQsocket(conn);
		FD_ZERO(&rfds);
		FD_SET(fd, &rfds);
		if (select(fd + 1, &rfds, NULL, NULL, &tv) <= 0)
			continue;
		if (!PQconsumeInput(conn))
			continue; /* broken: reconnect on the next turn */
		while ((n = PQnotifies(conn)) != NULL) {
			int64_t h = strtoll(n->extra, NULL, 10);
			if (h > best)
				best = h;
			PQfreemem(n);
		}
		if (best > 0) {
			int64_t old = atomic_load(&f->notified_head);
			while (old >= 0 && best > old &&
			       !atomic_compare_exchange_weak(&f->notified_head, &old, best))
				;
			uv_async_send(&f->async);
		}
	}
	if (conn != NULL)
		PQfinish(conn);
	return NULL;
}

static void
on_notify_timer(uv_timer_t *t)
{
	struct feed *f = t->data;
	int64_t head = atomic_exchange(&f->notified_head, 0);

	if (!f->head_known || f->freeing)
		return;
	if (head < 0)
		fetch_new(f, f->db, FETCH_HEAD, 0, 0, 0, NULL);
	else if (head > f->published)
		want_up_to(f, head);
}

static void
on_async(uv_async_t *a)
{
	struct feed *f = a->data;

	/* A short delay lets this statusd's own batch publish from memory first. */
	if (!uv_is_active((uv_handle_t *)&f->notify_timer))
		uv_timer_start(&f->notify_timer, on_notify_timer, NOTIFY_DELAY_MS, 0);
}

/* --- life cycle ---------------------------------------------------------------------- */

static struct feed *
feed_init(uv_loop_t *loop, const struct sd_config *cfg, struct dbworker *db,
          struct dbworker *page_db)
{
	struct feed *f = mycalloc(1, sizeof(*f));

	f->loop = loop;
	f->cfg = cfg;
	f->db = db;
	f->page_db[0] = db;
	f->page_db[1] = page_db;
	f->live = feed_index_new();
	pthread_mutex_init(&f->inbox_lock, NULL);
	uv_async_init(loop, &f->async, on_async);
	uv_async_init(loop, &f->inbox_async, on_inbox);
	uv_timer_init(loop, &f->notify_timer);
	uv_timer_init(loop, &f->retry_timer);
	f->async.data = f->inbox_async.data = f->notify_timer.data = f->retry_timer.data = f;
	f->handles = 4;
	return f;
}

struct feed *
feed_new(uv_loop_t *loop, const struct sd_config *cfg, struct dbworker *db,
         struct dbworker *page_db)
{
	struct feed *f = feed_init(loop, cfg, db, page_db);
	int rc;

	f->conninfo = mystrdup(cfg->database);
	if ((rc = pthread_create(&f->listener, NULL, listener_main, f)) != 0)
		msg_fatal("cannot start the feed listener: %s", strerror(rc));
	fetch_new(f, f->db, FETCH_HEAD, 0, 0, 0, NULL); /* where the log is now */
	return f;
}

struct feed *
feed_new_follower(uv_loop_t *loop, struct feed *first, struct dbworker *db,
                  struct dbworker *page_db)
{
	struct feed *f = feed_init(loop, first->cfg, db, page_db);

	f->first = first;
	return f;
}

void
feed_add_follower(struct feed *first, struct feed *follower)
{
	first->replicas =
	        myreallocarray(first->replicas, first->nreplicas + 1, sizeof(*first->replicas));
	first->replicas[first->nreplicas++] = follower;
}

void
feed_forget_followers(struct feed *f)
{
	free(f->replicas);
	f->replicas = NULL;
	f->nreplicas = 0;
}

/* Free once the handles are closed and no database read refers to the feed. */
static void
feed_release(struct feed *f)
{
	if (f->handles > 0 || f->jobs > 0)
		return;
	for (int i = 0; i < FEED_RING; i++) {
		feed_msg_unref(&f->ring[i].msg);
		free(f->ring[i].owner);
		free(f->ring[i].sender);
	}
	feed_index_free(&f->live);
	mbuf_free(&f->scratch);
	for (size_t i = 0; i < f->ninbox; i++)
		item_clear(&f->inbox[i]);
	free(f->inbox);
	free(f->outbox);
	free(f->replicas);
	pthread_mutex_destroy(&f->inbox_lock);
	free(f->pending);
	free(f->conninfo);
	free(f);
}

static void
on_closed(uv_handle_t *h)
{
	struct feed *f = h->data;

	f->handles--;
	feed_release(f);
}

void
feed_free(struct feed **fp)
{
	struct feed *f = *fp;

	if (f == NULL)
		return;
	*fp = NULL;
	f->freeing = true;
	if (f->first == NULL) {
		atomic_store(&f->listener_stop, true);
		pthread_join(f->listener, NULL);
	}
	while (f->subs != NULL) {
		struct feed_sub *sub = f->subs;
		if (sub->state != SUB_CLOSED)
			close_sub(sub, "statusd is stopping");
		feed_unsubscribe(sub);
	}
	uv_close((uv_handle_t *)&f->async, on_closed);
	uv_close((uv_handle_t *)&f->inbox_async, on_closed);
	uv_close((uv_handle_t *)&f->notify_timer, on_closed);
	uv_close((uv_handle_t *)&f->retry_timer, on_closed);
}

static void
stats_add(const struct feed *f, struct feed_stats *out)
{
	out->subscribers += __atomic_load_n(&f->stats.subscribers, __ATOMIC_RELAXED);
	out->live += __atomic_load_n(&f->stats.live, __ATOMIC_RELAXED);
	out->sent += __atomic_load_n(&f->stats.sent, __ATOMIC_RELAXED);
	out->slow_closed += __atomic_load_n(&f->stats.slow_closed, __ATOMIC_RELAXED);
}

void
feed_stats(const struct feed *f, struct feed_stats *out)
{
	memset(out, 0, sizeof(*out));
	stats_add(f, out);
	for (size_t i = 0; i < f->nreplicas; i++)
		stats_add(f->replicas[i], out);
	out->published = f->stats.published; /* each event once, not once per loop */
	out->head = f->published;
	out->epoch = f->epoch;
}
