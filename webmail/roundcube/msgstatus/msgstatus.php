<?php

/**
 * msgstatus for Roundcube: delivery status and read receipts where users read mail.
 *
 * - In the Sent folder's message list, a mark per message (queued, relayed, delivered,
 *   read, failed) that changes live.
 * - In the message view, each recipient's status and the message's timeline.
 * - In Settings, "Delivery status": the user's read receipts and presence switches.
 *
 * The browser talks to statusd directly (msgstatus.js, the client statusd serves) with a
 * short-lived token this plugin signs with the secret it shares with statusd; the secret
 * never leaves the server. See webmail/README.md and docs/api.md ("Signing tokens").
 *
 * @license GNU GPLv3+
 */
class msgstatus extends rcube_plugin
{
    public $task = 'mail|settings';

    public function init()
    {
        // plugins/msgstatus/config.inc.php (from config.inc.php.dist), or the same settings
        // in Roundcube's own config.inc.php
        $this->load_config();
        $rcmail = rcmail::get_instance();

        $this->register_action('plugin.msgstatus-token', [$this, 'token_action']);
        if ($rcmail->task == 'mail') {
            $this->add_hook('storage_init', [$this, 'storage_init']);
            $this->add_hook('messages_list', [$this, 'messages_list']);
            $this->add_hook('message_load', [$this, 'message_load']);
            if (in_array($rcmail->action, ['', 'list', 'show', 'preview'], true)
                && $rcmail->output->type == 'html'
            ) {
                $this->page_setup($rcmail);
            }
        } elseif ($rcmail->task == 'settings') {
            $this->add_hook('preferences_sections_list', [$this, 'sections']);
            $this->add_hook('preferences_list', [$this, 'prefs_list']);
            $this->add_hook('preferences_save', [$this, 'prefs_save']);
        }
    }

    /** What the page's script needs: where statusd is, a token, the labels. */
    private function page_setup($rcmail)
    {
        $this->add_texts('localization/', true);
        $rcmail->output->set_env('msgstatus_url', rtrim($rcmail->config->get('msgstatus_url'), '/'));
        $rcmail->output->set_env('msgstatus_token', $this->token());
        $this->include_script('msgstatus.js');
        $this->include_stylesheet('msgstatus.css');
    }

    /** The statusd user for the logged-in Roundcube user. */
    private function user()
    {
        $rcmail = rcmail::get_instance();
        $login = $rcmail->get_user_name();
        return strtolower(str_replace('%u', $login, $rcmail->config->get('msgstatus_user', '%u')));
    }

    /** A signed token (HS256 JWT) for the logged-in user, or null without a secret. */
    private function token()
    {
        $rcmail = rcmail::get_instance();
        $file = $rcmail->config->get('msgstatus_secret_file');
        $secret = $file ? @file_get_contents($file) : false;
        if ($secret === false) {
            rcube::raise_error(['code' => 500, 'file' => __FILE__, 'line' => __LINE__,
                'message' => "msgstatus: cannot read msgstatus_secret_file $file"], true, false);
            return null;
        }
        $secret = preg_replace('/\r?\n\z/', '', $secret); // one trailing newline is not part of it
        $b64 = function ($s) {
            return rtrim(strtr(base64_encode($s), '+/', '-_'), '=');
        };
        $now = time();
        $ttl = max(60, (int) $rcmail->config->get('msgstatus_token_ttl', 600));
        $head = $b64(json_encode(['alg' => 'HS256', 'typ' => 'JWT']));
        $body = $b64(json_encode(['sub' => $this->user(), 'iat' => $now, 'exp' => $now + $ttl]));
        $sig = $b64(hash_hmac('sha256', "$head.$body", $secret, true));
        return "$head.$body.$sig";
    }

    /** A fresh token for the page, when statusd refused the one it had (AJAX, POST). */
    public function token_action()
    {
        $rcmail = rcmail::get_instance();
        $rcmail->output->command('plugin.msgstatus_token', ['token' => $this->token()]);
        $rcmail->output->send();
    }

    /** The message list needs each message's Message-ID, which Roundcube does not fetch. */
    public function storage_init($args)
    {
        $args['fetch_headers'] = trim(($args['fetch_headers'] ?? '') . ' MESSAGE-ID');
        return $args;
    }

    /** Sent folder: tell each row its Message-ID, for the page to look its status up. */
    public function messages_list($args)
    {
        $rcmail = rcmail::get_instance();
        $sent = $rcmail->config->get('sent_mbox');
        if (empty($args['messages']) || $sent === null || $rcmail->storage->get_folder() !== $sent) {
            return $args;
        }
        foreach ($args['messages'] as $header) {
            if (!empty($header->messageID)) {
                $header->list_flags['extra_flags']['msgstatus'] = $header->messageID;
            }
        }
        return $args;
    }

    /** Message view: its Message-ID for the status panel (statusd shows it only to its sender). */
    public function message_load($args)
    {
        $rcmail = rcmail::get_instance();
        $message = $args['object'];
        if (!empty($message->headers->messageID) && $rcmail->output->type == 'html') {
            $rcmail->output->set_env('msgstatus_message', $message->headers->messageID);
        }
        return $args;
    }

    // --- settings ---------------------------------------------------------------------

    public function sections($args)
    {
        $this->add_texts('localization/');
        $args['list']['msgstatus'] = ['id' => 'msgstatus', 'section' => $this->gettext('section')];
        return $args;
    }

    /** A request to statusd's API as the user: [HTTP status, decoded JSON or null]. */
    private function api($method, $path, $body = null)
    {
        $rcmail = rcmail::get_instance();
        $base = $rcmail->config->get('msgstatus_api_url') ?: $rcmail->config->get('msgstatus_url');
        $token = $this->token();
        if ($token === null) {
            return [0, null];
        }
        $headers = "Authorization: Bearer $token\r\nAccept: application/json\r\n";
        $opts = ['method' => $method, 'header' => $headers, 'timeout' => 5, 'ignore_errors' => true];
        if ($body !== null) {
            $opts['header'] .= "Content-Type: application/json\r\n";
            $opts['content'] = json_encode($body);
        }
        $ctx = stream_context_create(['http' => $opts]);
        $data = @file_get_contents(rtrim($base, '/') . $path, false, $ctx);
        $status = 0;
        foreach ($http_response_header ?? [] as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
                $status = (int) $m[1];
            }
        }
        if ($data === false || $status == 0) {
            rcube::raise_error(['code' => 503, 'file' => __FILE__, 'line' => __LINE__,
                'message' => "msgstatus: statusd at $base cannot be reached"], true, false);
            return [0, null];
        }
        return [$status, json_decode($data, true)];
    }

    public function prefs_list($args)
    {
        if ($args['section'] != 'msgstatus') {
            return $args;
        }
        $this->add_texts('localization/');
        $args['blocks']['main']['name'] = $this->gettext('section');
        [$status, $prefs] = $this->api('GET', '/api/v1/preferences');
        if ($status != 200 || !is_array($prefs)) {
            $args['blocks']['main']['options']['unavailable'] = [
                'title' => rcube::Q($this->gettext('unavailable')), 'content' => ''];
            return $args;
        }
        foreach (['read_receipts', 'presence'] as $field) {
            $id = "msgstatus_$field";
            $checkbox = new html_checkbox(['name' => "_$id", 'id' => $id, 'value' => 1]);
            $args['blocks']['main']['options'][$field] = [
                'title' => html::label($id, rcube::Q($this->gettext($field))),
                'content' => $checkbox->show(!empty($prefs[$field]) ? 1 : 0),
            ];
        }
        // server-sent MDNs: never, always, or "" for the administrator's default (null)
        $select = new html_select(['name' => '_msgstatus_mdn', 'id' => 'msgstatus_mdn']);
        $select->add($this->gettext('mdn_default'), '');
        $select->add($this->gettext('mdn_never'), 'never');
        $select->add($this->gettext('mdn_always'), 'always');
        $args['blocks']['main']['options']['mdn'] = [
            'title' => html::label('msgstatus_mdn', rcube::Q($this->gettext('mdn'))),
            'content' => $select->show(isset($prefs['mdn']) ? (string) $prefs['mdn'] : ''),
        ];
        return $args;
    }

    public function prefs_save($args)
    {
        if ($args['section'] != 'msgstatus') {
            return $args;
        }
        $this->add_texts('localization/');
        $want = [];
        foreach (['read_receipts', 'presence'] as $field) {
            $want[$field] = !empty(rcube_utils::get_input_string("_msgstatus_$field", rcube_utils::INPUT_POST));
        }
        $mdn = rcube_utils::get_input_string('_msgstatus_mdn', rcube_utils::INPUT_POST);
        $want['mdn'] = in_array($mdn, ['never', 'always'], true) ? $mdn : null;
        [$status, $doc] = $this->api('PUT', '/api/v1/preferences', $want);
        // nothing of this is kept in Roundcube's own preferences
        $args['abort'] = true;
        $args['result'] = $status == 200;
        if ($status != 200) {
            $why = is_array($doc) && !empty($doc['detail']) ? $doc['detail'] : $this->gettext('unavailable');
            $args['message'] = sprintf($this->gettext('saveerror'), $why);
        }
        return $args;
    }
}
