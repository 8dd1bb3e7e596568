<?php

namespace PixlIPC\Tests\Support;

use PixlIPCClient;

/**
 * A subclass written for the original PixlIPCClient, as applications have
 * them: the original's signatures (send() by reference, no types), the
 * protected $fp, $serialCounter, nextID() and readMessage(), and a close()
 * of its own, since the original had none. No strict_types, as such code
 * often has none. It must keep working unchanged.
 */
class LegacyClient extends PixlIPCClient
{
    /** @var array<int, string> */
    public $sentUris = array();

    /** @var array<int, string> */
    public $ids = array();

    /** @var int */
    public $messagesRead = 0;

    public function __construct($socketPath, $options = null)
    {
        parent::__construct($socketPath, $options);
    }

    public function send($uri, &$request)
    {
        $this->sentUris[] = $uri;
        return parent::send($uri, $request);
    }

    protected function nextID()
    {
        $id = parent::nextID();
        $this->ids[] = $id;
        return $id;
    }

    protected function readMessage()
    {
        $message = parent::readMessage();
        if ($message) {
            $this->messagesRead++;
        }
        return $message;
    }

    /**
     * A request written by hand on the connection, with a member of its own,
     * then read back with readMessage(), skipping other ids.
     */
    public function sendTagged($uri, $data, $tag)
    {
        $this->connect();
        $id = 'rq' . $this->serialCounter++;
        fwrite($this->fp, json_encode(array('uri' => $uri, 'ipcReqID' => $id, 'data' => $data, 'tag' => $tag)));
        fwrite($this->fp, "\n");
        do {
            $message = $this->readMessage();
        } while ($message && $message['ipcReqID'] != $id);
        return $message ? $message['data'] : false;
    }

    public function isConnected()
    {
        return is_resource($this->fp);
    }

    public function close()
    {
        if ($this->fp) {
            fclose($this->fp);
            $this->fp = null;
        }
    }
}
