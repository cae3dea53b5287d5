"""The supervising `cnnjax train` of a multi-process run, without processes:
which process a report names, and what of the child's stderr passes through.
tests/test_multiprocess.py kills real ones."""

import io
import os
import threading

import pytest

from cnnjax.training import supervisor

# As JAX 0.10's runtime reports them (xla/pjrt/distributed/client.h), on a
# survivor of a SIGKILLed process 0, and on process 0 of a SIGSTOPped process 1.
LEADER_GONE = (
    b"F1207 16:23:29.468696   29795 client.h:80] Terminating process because the JAX distributed "
    b"service detected fatal errors. This most likely indicates that another task died; see the "
    b"other task logs for more details. absl::Status: UNAVAILABLE: Failed to send RPC to "
    b"coordination service. Either the leader task was preempted/died/restarted unexpectedly or "
    b"this task is experiencing network issues.\n"
    b"*** Check failure stack trace: ***\n    @     0x7f00 absl::log_internal::LogMessage\n")
HEARTBEATS_STOPPED = (
    b"F1207 16:35:10.122600   23388 client.h:80] Terminating process because the JAX distributed "
    b"service detected fatal errors. absl::Status: UNAVAILABLE: The following tasks are unhealthy "
    b"(stopped sending heartbeats):\n2\nThe tasks have crashed.\n*** Check failure stack trace: ***\n")


@pytest.mark.parametrize("report, process_id, num_processes, expected", [
    (LEADER_GONE, 1, 2, "process 0"),
    (LEADER_GONE, None, 2, "the other process"),
    (LEADER_GONE, 2, 4, "process 0 (the coordinator)"),
    (HEARTBEATS_STOPPED, 0, 4, "process 2"),
    (HEARTBEATS_STOPPED, None, 4, "process 2"),
    (b"Gloo all-reduce failed: Read error [10.0.0.3]:4242: Connection reset by peer", 1, 4,
     "a peer process"),
])
def test_the_lost_process_is_named(report, process_id, num_processes, expected):
  assert supervisor.lost_process(report.decode(), process_id, num_processes) == expected


def _through(*chunks: bytes) -> tuple[bytes, bytes | None]:
  """What `_pass_through` forwards of `chunks` written to a pipe, and what it withholds."""
  read_end, write_end = os.pipe()

  def write():
    for chunk in chunks:
      os.write(write_end, chunk)
    os.close(write_end)

  writer = threading.Thread(target=write)
  writer.start()
  target = io.BytesIO()
  withheld = supervisor._pass_through(read_end, target)
  writer.join()
  os.close(read_end)
  return target.getvalue(), withheld


def test_output_passes_through_but_the_fatal_report_is_withheld():
  progress = b"\rtrain 1/9 |  | 00:01\rtrain 2/9 |  | 00:02"
  passed, withheld = _through(b"[Gloo] Rank 0 is connected\n", progress,
                              b"\nE1207 coordination_service_agent.cc:289] Polled an error\n",
                              LEADER_GONE[:50], LEADER_GONE[50:])
  assert passed == (b"[Gloo] Rank 0 is connected\n" + progress +
                    b"\nE1207 coordination_service_agent.cc:289] Polled an error\n")
  assert withheld == LEADER_GONE


def test_output_without_a_report_passes_through_whole():
  text = b"First line\nF is for a line that is not glog's\nno newline at the end"
  assert _through(text[:7], text[7:]) == (text, None)
