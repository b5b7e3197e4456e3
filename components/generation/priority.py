"""The generation thread gives way to the dialogue: a higher nice value for that thread only.

On a machine with few cores an in-process model competes with the Rasa
server and the action server for the CPU. Linux schedules threads, and a
thread's nice value is its own (``setpriority`` with the thread's id), so the
thread that generates can be made to yield to every other thread of every
process while the rest of the action server keeps its priority. Threads that
llama.cpp or torch start from it inherit the value. Raising a nice value
needs no privilege; lowering it again does, so the value only ever goes up.
Where threads cannot be reniced (not Linux) nothing changes and the log says so.
"""

from __future__ import annotations

import logging
import os
import threading

logger = logging.getLogger(__name__)

MAX_NICE = 19


def yield_cpu(nice: int) -> int:
    """Raises the calling thread's nice value to the process's plus ``nice`` (at most 19).

    Returns:
        The thread's nice value afterwards.
    """
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        logger.info("Generation thread priority unchanged: this system cannot renice a thread.")
        return 0
    tid = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, tid)
    target = min(MAX_NICE, os.getpriority(os.PRIO_PROCESS, os.getpid()) + nice)
    if current >= target:
        return current
    try:
        os.setpriority(os.PRIO_PROCESS, tid, target)
    except OSError as error:  # e.g. a sandbox that forbids it: generation still works
        logger.warning(f"Could not lower the generation thread's priority to nice {target}: {error}.")
        return current
    logger.info(f"Generation thread {tid} runs at nice {target}, so dialogue turns keep the CPU.")
    return target
