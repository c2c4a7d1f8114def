/*
 * pickup - statusd reads event files from the pickup directory. See pickup.c.
 */
#ifndef PICKUP_H
#define PICKUP_H

#include <uv.h>

struct ingest;
struct sd_config;
struct pickup;

/* Start watching cfg->pickup_dir (NULL if the setting is empty). */
struct pickup *pickup_start(uv_loop_t *loop, const struct sd_config *cfg, struct ingest *ing);
/* (Re)arm the inotify watch; done by the timer when the directory appears late. */
void pickup_watch_start(struct pickup *p);
/* Stop looking for new files (the one being stored goes on). */
void pickup_stop(struct pickup *p);
/*
 * Free, once no batch can complete any more (after the database workers stopped): a file
 * not wholly stored stays and is read again at the next start.
 */
void pickup_free(struct pickup **p);

#endif
