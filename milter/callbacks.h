/*
 * callbacks - msgstatus-milter's libmilter callbacks. See callbacks.c.
 */
#ifndef CALLBACKS_H
#define CALLBACKS_H

struct spool;

/* Register the milter with libmilter; tracked messages' events go to sp. */
void callbacks_register(struct spool *sp);

#endif
