/*
 * msgstatus - the Dovecot plugin's entry points, as Dovecot's module loader looks them up
 * (lib90_msgstatus_plugin.so: msgstatus_plugin_init, _deinit, _version, _dependencies).
 * msgstatus-plugin.c says what the plugin reports and how.
 */
#ifndef MSGSTATUS_PLUGIN_H
#define MSGSTATUS_PLUGIN_H

struct module;

extern const char *msgstatus_plugin_version;
/* {"notify", NULL}: the plugin collects its events through the notify plugin. */
extern const char *msgstatus_plugin_dependencies[];

/* Register the notify, mail storage and (in LMTP and LDA) delivery hooks. */
void msgstatus_plugin_init(struct module *module);
/* Hand over what statusd has not acknowledged (msgstatus_client_deinit()) and remove the
   hooks. */
void msgstatus_plugin_deinit(void);

#endif
