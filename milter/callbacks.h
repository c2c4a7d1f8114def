/*
 * callbacks - msgstatus-milter's libmilter callbacks. See callbacks.c.
 */
#ifndef CALLBACKS_H
#define CALLBACKS_H

struct dkimverify;
struct shipper;
struct spool;

/* Register the milter with libmilter; tracked messages' events go to sp, or to sh's memory
   when sp cannot take them. Mail with a foreign Msgstatus-Id is DKIM-checked with dkim
   (NULL: never, and never remembered). */
void callbacks_register(struct spool *sp, struct shipper *sh, struct dkimverify *dkim);

#endif
