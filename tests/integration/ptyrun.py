"""Run a command on a new pseudo-terminal, type a line when a prompt appears,
and report what the terminal showed. Used by test_prompt.sh.

usage: ptyrun.py PROMPT LINE TRANSCRIPT CMD...
Writes everything the command wrote to its terminal into TRANSCRIPT and
exits with the command's exit status. LINE is typed once, after the first
PROMPT, followed by a carriage return (Enter)."""
import os
import pty
import sys

prompt, line, transcript, argv = sys.argv[1].encode(), sys.argv[2].encode(), sys.argv[3], sys.argv[4:]
pid, fd = pty.fork()
if pid == 0:
    # The child has the pty as its controlling terminal: /dev/tty is it.
    os.execvp(argv[0], argv)
seen = b""
typed = False
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:   # EIO: the child closed the terminal
        break
    if not data:
        break
    seen += data
    if not typed and prompt in seen:
        os.write(fd, line + b"\r")
        typed = True
_, status = os.waitpid(pid, 0)
with open(transcript, "wb") as f:
    f.write(seen)
sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8)
