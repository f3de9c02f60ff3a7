"""Demo: two chat servers share the 'chat' topic exchange; alice (on s1) and bob (on s2) join
the lobby with the terminal client, chat across the servers, and bob's leave reaches alice.
Run it with ``python examples/run.py chat [--url URL]``."""
import re

QUEUES = ()                 # every WebSocket connection's queue is exclusive and auto-delete
EXCHANGES = ("chat",)


def demo(d):
    urls = []
    for name in ("s1", "s2"):
        server = d.start("server.py", "--port", "0", "--name", name, "--timeout", "60", label=name)
        urls.append(re.search(r"(ws://[\d.]+:\d+)", server.expect("Chat server")).group(1))
    alice = d.start("client.py", "--server", urls[0], "lobby", "alice", stdin=True, label="alice")
    alice.expect("alice@s1: (join)")
    bob = d.start("client.py", "--server", urls[1], "lobby", "bob", stdin=True, label="bob")
    bob.expect("bob@s2: (join)")
    alice.expect("bob@s2: (join)")
    alice.send("hello bob")
    bob.expect("alice@s1: hello bob")
    bob.send("hi alice, I am on the other server")
    alice.expect("bob@s2: hi alice")
    d.say("bob closes his client")
    bob.stop()
    alice.expect("bob@s2: (leave)")
