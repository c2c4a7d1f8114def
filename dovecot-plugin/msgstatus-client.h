/*
 * msgstatus - the plugin's side of statusd's event socket and pickup directory: event
 * records in docs/protocol.md's wire format, handed over without waiting.
 *
 * The hooks (msgstatus-plugin.c) build records with msgstatus_client_record_begin() and
 * hand each mailbox transaction's records over at commit. Everything about where they go
 * is here: the process's one connection to statusd's event socket, the replies that
 * acknowledge records, and the pickup files for what statusd did not acknowledge.
 * msgstatus-client.c's header comment says how.
 *
 * Like the hooks, this is written against Dovecot's own library only.
 */
#ifndef MSGSTATUS_CLIENT_H
#define MSGSTATUS_CLIENT_H

#include "lib.h"

/* Append the start of one record to out: {"v":1,"id":...,"type":TYPE,"time":...,
   "source":SOURCE,"recipient":"USER" with a new random event id and the time now. The
   caller adds its members and ends the record with "}\n". type and source are written as
   they are (constants); user is JSON-escaped. */
void msgstatus_client_record_begin(string_t *out, const char *type, const char *source,
                                   const char *user);

/* Hand count records (whole lines) over to statusd: to socket_path's connection if it can
   be had at once, else (or with socket_path "") appended to the process's pickup file in
   pickup_dir, which statusd gets within a second (see msgstatus-client.c). Never waits;
   never fails (what cannot go anywhere is held in memory for the next hand-over, or lost
   and logged). The records are copied; the caller keeps them. Uses the data stack: call
   it inside a T_BEGIN frame. */
void msgstatus_client_hand_over(const char *socket_path, const char *pickup_dir,
                                const string_t *records, unsigned int count);

/* What statusd answered to an mdn record (docs/protocol.md, "Replies"). */
enum msgstatus_mdn_reply {
	MSGSTATUS_MDN_SEND, /* a notification goes (or went) out: set $MDNSent */
	MSGSTATUS_MDN_NONE, /* no notification for it, or statusd rejected the record */
	MSGSTATUS_MDN_LOST, /* no answer will come: the record went to a pickup file (statusd
	                       decides when it reads it), or the owner was forgotten */
};
typedef void msgstatus_mdn_callback_t(void *context, enum msgstatus_mdn_reply reply);

/* Hand one mdn record (a whole line) over like msgstatus_client_hand_over(), and call
   callback with statusd's answer once it comes: later, from the ioloop, or at once
   (MSGSTATUS_MDN_LOST) when the record does not go over the socket. owner is who may
   msgstatus_client_forget() the callback. Uses the data stack. */
void msgstatus_client_hand_over_mdn(const char *socket_path, const char *pickup_dir,
                                    const string_t *record, const void *owner,
                                    msgstatus_mdn_callback_t *callback, void *context);
/* Call the callbacks of owner's records that wait for their answers with
   MSGSTATUS_MDN_LOST now (the owner goes away). */
void msgstatus_client_forget(const void *owner);

/* Hand the pickup file the process appends to (if any) to statusd now: at the end of a
   user's session, so that no timeout outlives it. Uses the data stack. */
void msgstatus_client_pickup_flush(void);

/* At process exit: give statusd a moment (MSGSTATUS_EXIT_WAIT_MSECS) to acknowledge,
   file the rest in the pickup directory, close the connection and free its memory. Uses
   the data stack, as msgstatus_client_hand_over() does. */
void msgstatus_client_deinit(void);

#endif
