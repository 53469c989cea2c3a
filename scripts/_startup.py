"""What every script does before TensorFlow starts: quiet its start-up lines, and exit 0 on --help.

Imported first by each script (``import _startup``; the name sorts before
every other import), it

* sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless the environment sets it;
* imports TensorFlow and lists its devices with the process's stderr (fd 2)
  captured, then writes back what TensorFlow would have printed had it
  honoured ``TF_CPP_MIN_LOG_LEVEL`` from the start: the C++ lines written
  before absl's logging is initialised ("oneDNN custom operations are on",
  "Could not find cuda drivers", twice: two libraries each print them) are
  dropped below that level, and so is the "failed call to cuInit" error on
  a machine without a CUDA driver, which only repeats that there is none.
  Every other line (Python warnings, errors) is written as it came;
* offers ``run(main)``: ``absl.app.run`` whose --help, --helpshort,
  --helpfull and --helpxml exit with status 0 (absl's exit with 1), as
  argparse and most command-line tools do.
"""

import os
import re
import sys
import tempfile

from absl import app, flags

__all__ = ["run", "visible_startup_lines"]

# absl's C++ log line header: severity letter, date, time, thread id, file:line]
_HEADER = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ [^ \]]+:\d+\] ")
_SEVERITY_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}
_BEFORE_INIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
_NO_DRIVER = "Could not find cuda drivers on your machine"
_CUINIT_FAILED = "failed call to cuInit"
_CONTINUATION = "To enable the following instructions"  # the CPU feature guard's record goes on on a second line


def visible_startup_lines(text: str, min_log_level: int) -> list[str]:
    """The lines of TensorFlow's start-up output ``text`` that ``TF_CPP_MIN_LOG_LEVEL=min_log_level`` shows.

    A C++ log record below the level is dropped (with the second line of
    the CPU feature guard's record); the cuInit failure is dropped when the
    same output says no CUDA driver was found. Every other line is kept.
    """
    no_driver = _NO_DRIVER in text
    kept, dropped_last = [], False
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            level = _SEVERITY_LEVELS[header.group(1)]
            dropped_last = level < min_log_level or (no_driver and _CUINIT_FAILED in line and level < 3)
            if not dropped_last:
                kept.append(line)
        elif line == _BEFORE_INIT or (dropped_last and line.startswith(_CONTINUATION)):
            continue
        else:
            dropped_last = False
            kept.append(line)
    return kept


def _min_log_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def _start_tensorflow_quietly() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA's initialisation prints here
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            for line in visible_startup_lines(text, _min_log_level()):
                print(line, file=sys.stderr)


_HELP_ARGUMENTS = ("--help", "--helpshort", "--helpfull", "--helpxml", "-?")


def _parse_flags(argv):
    """absl's parsing, but a help flag exits with 0 (absl's help flags are the only ones that exit while parsing)."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:  # absl's own message and status
        print(f"FATAL Flags parsing error: {error}\nPass --helpshort or --helpfull to see help on flags.",
              file=sys.stderr)
        sys.exit(1)
    except SystemExit as stop:
        if stop.code == 1 and any(arg.split("=")[0] in _HELP_ARGUMENTS for arg in argv[1:]):
            sys.exit(0)
        raise


def run(main) -> None:
    """``absl.app.run(main)`` with help flags that exit 0."""
    app.run(main, flags_parser=_parse_flags)


_start_tensorflow_quietly()
