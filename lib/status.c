/*
 * status - order-independent status derivation. See status.h for the rules.
 */
#include "status.h"

#include <string.h>

#include "msg.h"

#define TIME_BITS 44
#define TIME_MASK ((INT64_C(1) << TIME_BITS) - 1)

/* Rank on its axis per type; the reading axis ranks by time alone, with code as tie-break. */
static const int delivery_rank[MSEV_TYPE_MAX + 1] = {
        [MSEV_QUEUED] = 0,  [MSEV_DEFERRED] = 1, [MSEV_BOUNCED] = 2,
        [MSEV_EXPIRED] = 2, [MSEV_RELAYED] = 3,  [MSEV_DELIVERED] = 4,
};
/* Tie-break at the same millisecond on the reading axis: higher wins. (Deleted's 3 is
   from when it shared the axis; keys stored since keep it.) */
static const int reading_tiebreak[MSEV_TYPE_MAX + 1] = {
        [MSEV_READ] = 1,
        [MSEV_UNREAD] = 2,
        [MSEV_DELETED] = 3,
};

enum status_axis
status_axis(enum msevent_type type)
{
	switch (type) {
	case MSEV_READ:
	case MSEV_UNREAD:
		return STATUS_AXIS_READING;
	case MSEV_DELETED:
	case MSEV_COPIED:
	case MSEV_EXPUNGED:
		return STATUS_AXIS_MAILBOX;
	default:
		return STATUS_AXIS_DELIVERY;
	}
}

int64_t
status_key(enum msevent_type type, int64_t time_ms)
{
	int64_t t, rank;

	if (!MSEV_IS_STATUS(type))
		msg_panic("status_key: bad type %d (not a status)", (int)type);
	t = time_ms < 0 ? 0 : time_ms > TIME_MASK ? TIME_MASK : time_ms;
	if (status_axis(type) == STATUS_AXIS_DELIVERY)
		rank = delivery_rank[type];
	else
		rank = 0;
	/* The reading axis breaks ties by a 2-bit preference stored above the code. */
	return (rank << 60) | (t << 16) | ((int64_t)reading_tiebreak[type] << 4) | (int64_t)type;
}

int64_t
status_event_key(enum msevent_type type, int64_t time_ms)
{
	if (type == MSEV_COPIED)
		return 0;
	if (type == MSEV_EXPUNGED)
		return status_key(MSEV_DELETED, time_ms);
	return status_key(type, time_ms);
}

int64_t
status_report_key(enum msevent_type type, int64_t time_ms)
{
	int64_t key = status_event_key(type, time_ms);

	if (type != MSEV_BOUNCED)
		return key;
	/* the rank bits of a delivered key, the rest (time, code) of the bounce's */
	return (key & ~(INT64_C(7) << 60)) | ((int64_t)delivery_rank[MSEV_DELIVERED] << 60);
}

int
status_copies(enum msevent_type type, const char *source)
{
	switch (type) {
	case MSEV_DELIVERED:
		/* saved into a mailbox: the plugin's; Postfix's says that LMTP took it */
		return source != NULL && strcmp(source, "dovecot") == 0 ? 1 : 0;
	case MSEV_COPIED:
		return 1;
	case MSEV_EXPUNGED:
	case MSEV_DELETED: /* an expunge, as stored before schema 005 */
		return -1;
	default:
		return 0;
	}
}

enum msevent_type
status_key_type(int64_t key)
{
	return (enum msevent_type)(key & 15);
}

int64_t
status_key_time(int64_t key)
{
	return (key >> 16) & TIME_MASK;
}

void
status_apply(struct status_state *st, enum msevent_type type, int64_t time_ms)
{
	int64_t key = status_event_key(type, time_ms);
	int64_t *axis;

	switch (status_axis(type)) {
	case STATUS_AXIS_DELIVERY:
		axis = &st->dkey;
		break;
	case STATUS_AXIS_READING:
		axis = &st->rkey;
		if (type == MSEV_READ)
			st->displayed = true;
		break;
	default:
		axis = &st->xkey;
		break;
	}
	if (key > *axis)
		*axis = key;
}

void
status_count(struct status_state *st, int copies)
{
	st->copies += copies;
}

void
status_merge(struct status_state *a, const struct status_state *b)
{
	if (b->dkey > a->dkey)
		a->dkey = b->dkey;
	if (b->rkey > a->rkey)
		a->rkey = b->rkey;
	if (b->xkey > a->xkey)
		a->xkey = b->xkey;
	a->copies += b->copies;
	a->displayed = a->displayed || b->displayed;
}

void
status_view(const struct status_state *st, struct status_view *out)
{
	int64_t key = st->xkey != 0 && st->copies <= 0 ? st->xkey
	              : st->rkey != 0                  ? st->rkey
	                                               : st->dkey;

	out->status = key != 0 ? status_key_type(key) : MSEV_NONE;
	out->time_ms = key != 0 ? status_key_time(key) : 0;
	out->displayed = st->displayed ? "yes" : "unknown";
	switch (out->status) {
	case MSEV_NONE:
	case MSEV_ONLINE:  /* presence, copied, expunged and inbound never show: listed for */
	case MSEV_OFFLINE: /* completeness */
	case MSEV_COPIED:
	case MSEV_EXPUNGED:
	case MSEV_INBOUND:
	case MSEV_REPORT:
	case MSEV_MDN:
	case MSEV_QUEUED:
	case MSEV_DEFERRED:
		out->delivered = "queued";
		break;
	case MSEV_RELAYED:
		out->delivered = "unknown";
		break;
	case MSEV_BOUNCED:
	case MSEV_EXPIRED:
		out->delivered = "no";
		break;
	case MSEV_DELIVERED:
	case MSEV_READ:
	case MSEV_UNREAD:
	case MSEV_DELETED:
		out->delivered = "yes";
		break;
	}
}
