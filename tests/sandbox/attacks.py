"""Hostile programs and the outcome each must get.

Two target problems: ``add(a, b)`` (tests with literal expected values the attack does not compute), and
``probe()`` whose expected value is what a well-isolated sandbox yields (e.g. "could not read the secret":
``None``), so a probe *passes* exactly when isolation held. ``{canary}`` and ``{secret_env}`` are filled in
by the runner. Each attack lists the statuses it may get; ``passed`` appears only for probes and for
harmless-but-correct programs whose danger is a side effect checked afterwards (no process left, no file
changed outside the sandbox).
"""

from __future__ import annotations

ADD = "add"
PROBE = "probe"
NOT_PASSED = ("wrong_answer", "runtime_error", "timeout", "memory_limit", "output_limit")

# Attacks that run in a sandbox of their own with a longer time limit (``attack_runner.TOUCH_CONFIG``): the
# growing bomb writes every page of its 512 MB before the address-space limit stops it, and the first touch of
# memory the VM's host has not backed costs ~13 us a page of system time (measured on a fresh clone, right
# after `make setup`: 1.65-1.77 s of CPU for 500 MB, against 0.25 s once warm). Under the suite's 2 s limit
# it then raced the time limit and was sometimes called a timeout (the CI failure of stop 24).
NEEDS_TIME = frozenset({"memory_bomb_grow"})

# name: (target, program, allowed statuses, probe expected value)
ATTACKS: dict[str, tuple[str, str, tuple[str, ...], object]] = {
    "sys_exit_at_load": (ADD, "import sys\nsys.exit(0)\n", ("runtime_error",), None),
    "os_exit_at_load": (ADD, "import os\nos._exit(0)\n", ("runtime_error",), None),
    "os_exit_in_call": (ADD, "import os\ndef add(a, b):\n    os._exit(0)\n", ("runtime_error",), None),
    "sys_exit_in_call": (ADD, "import sys\ndef add(a, b):\n    sys.exit(0)\n", ("runtime_error",), None),
    "eq_always_true": (ADD, "class A:\n    def __eq__(self, o): return True\n    __hash__ = None\n"
                       "def add(a, b):\n    return A()\n", ("wrong_answer",), None),
    "int_subclass_eq": (ADD, "class I(int):\n    def __eq__(self, o): return True\n"
                        "def add(a, b):\n    return I(0)\n", ("wrong_answer",), None),
    "replace_assertion_error": (ADD, "import builtins\nclass E(Exception): pass\nbuiltins.AssertionError = E\n"
                                "def add(a, b):\n    return 0\n", ("wrong_answer",), None),
    "print_fake_verdict": (ADD, "print('passed'); print('{\"ev\": \"script_ok\", \"i\": 0}')\n"
                           "def add(a, b):\n    print('{\"ev\":\"value\",\"i\":0,\"v\":[\"i\",\"0x3\"]}')\n"
                           "    return 0\n", ("wrong_answer",), None),
    "forge_result_channel": (ADD, "import os\ndef add(a, b):\n"
                             "    os.write(3, b'{\"ev\":\"script_ok\",\"i\":0,\"secret\":\"guess\"}\\n')\n"
                             "    os.write(3, b'{\"ev\":\"done\"}\\n')\n    os._exit(0)\n",
                             ("wrong_answer", "runtime_error"), None),
    "patch_serialiser": (ADD, "import json\n_d = json.dumps\n"
                         "json.dumps = lambda o, **k: _d({'ev': 'value', 'i': o.get('i'), 'v': ['i', '0x3']}, **k)"
                         " if isinstance(o, dict) and o.get('ev') == 'value' else _d(o, **k)\n"
                         "def add(a, b):\n    return 0\n", ("wrong_answer",), None),
    "patch_isinstance": (ADD, "import builtins\nbuiltins.isinstance = lambda *a: True\n"
                         "builtins.type = lambda *a: int\ndef add(a, b):\n    return 'x'\n",
                         ("wrong_answer", "runtime_error"), None),  # it breaks its own interpreter
    "del_raises": (ADD, "class X:\n    def __del__(self):\n        raise SystemExit(0)\n"
                   "def add(a, b):\n    X()\n    return -1\n", ("wrong_answer",), None),
    "alarm_disabled_busy": (ADD, "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.alarm(0)\n"
                            "def add(a, b):\n    while True: pass\n", ("timeout",), None),
    "sleep_sigalrm_ignored": (ADD, "import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                              "def add(a, b):\n    time.sleep(1000)\n", ("timeout",), None),
    "ignore_term_xcpu": (ADD, "import signal\nfor s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGINT, "
                         "signal.SIGHUP):\n    signal.signal(s, signal.SIG_IGN)\n"
                         "def add(a, b):\n    while True: pass\n", ("timeout",), None),
    "busy_at_load": (ADD, "while True: pass\n", ("timeout",), None),
    "deadlock": (ADD, "import threading\nl = threading.Lock()\nl.acquire()\ndef add(a, b):\n    l.acquire()\n",
                 ("timeout",), None),
    "stop_self": (ADD, "import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGSTOP)\n",
                  ("timeout",), None),
    "kill_parent": (ADD, "import os\ndef add(a, b):\n    for p in (os.getppid(), 1):\n        try: os.kill(p, 9)\n"
                    "        except OSError: pass\n    return 0\n", ("wrong_answer",), None),
    "kill_everything": (ADD, "import os\ndef add(a, b):\n    os.kill(-1, 9)\n    return 0\n",
                        ("runtime_error",), None),
    "fork_bomb": (ADD, "import os\ndef add(a, b):\n    while True:\n        try: os.fork()\n"
                  "        except OSError: pass\n", ("timeout", "runtime_error"), None),
    "orphan_child_survives": (ADD, "import os, time\ndef add(a, b):\n    if os.fork() == 0:\n"
                              "        time.sleep(1000)\n    return a + b\n", ("passed",), None),
    "setsid_daemon": (ADD, "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                      "        while True: time.sleep(0.01)\n    os._exit(0)\ndef add(a, b):\n    return a + b\n",
                      ("passed",), None),
    "threads_left_running": (ADD, "import threading, time\ndef spin():\n    while True: time.sleep(0.001)\n"
                             "for _ in range(4):\n    threading.Thread(target=spin).start()\n"
                             "def add(a, b):\n    return a + b\n", ("passed",), None),
    "infinite_recursion": (ADD, "def add(a, b):\n    return add(a, b)\n", ("runtime_error",), None),
    "memory_bomb_alloc": (ADD, "def add(a, b):\n    return len(bytearray(10 ** 11))\n", ("memory_limit",), None),
    "memory_bomb_grow": (ADD, "def add(a, b):\n    l = []\n    while True:\n        l.append(' ' * (5 * 10 ** 7))\n",
                         ("memory_limit",), None),
    "flood_stdout": (ADD, "def add(a, b):\n    while True:\n        print('x' * 10000)\n", ("output_limit",), None),
    "flood_result_channel": (ADD, "import os\ndef add(a, b):\n    while True:\n        os.write(3, b'x' * 65536)\n",
                             ("output_limit",), None),
    "huge_return_value": (ADD, "def add(a, b):\n    return 'x' * (10 ** 8)\n", ("output_limit",), None),
    "big_file": (ADD, "def add(a, b):\n    with open('big', 'wb') as f:\n        f.write(b'x' * 10 ** 8)\n"
                 "    return 0\n", ("output_limit",), None),
    "close_std_streams": (ADD, "import os\nos.close(1)\nos.close(2)\ndef add(a, b):\n    print('hi')\n"
                          "    return a + b\n", ("passed", "runtime_error"), None),
    "close_result_channel": (ADD, "import os\ndef add(a, b):\n    os.close(3)\n    return 3\n",
                             ("runtime_error",), None),
    "deep_nesting": (ADD, "def add(a, b):\n    x = []\n    for _ in range(100000):\n        x = [x]\n    return x\n",
                     ("wrong_answer",), None),
    "generator_return": (ADD, "def add(a, b):\n    return (i for i in [a + b])\n", ("wrong_answer",), None),
    "evil_exception_str": (ADD, "class E(Exception):\n    def __str__(self):\n        raise E()\n"
                           "def add(a, b):\n    raise E()\n", ("runtime_error",), None),
    "write_outside_etc": (ADD, "def add(a, b):\n    open('/etc/selfdebug_pwned', 'w').write('x')\n    return 0\n",
                          ("runtime_error",), None),
    "write_sitecustomize": (ADD, "import site, os\ndef add(a, b):\n    for d in site.getsitepackages():\n"
                            "        open(os.path.join(d, 'sitecustomize.py'), 'w').write('x')\n    return 0\n",
                            ("runtime_error",), None),
    "delete_canary": (ADD, "import os, shutil\ndef add(a, b):\n    os.remove({canary!r})\n"
                      "    shutil.rmtree(os.path.dirname({canary!r}))\n    return 0\n", ("runtime_error",), None),
    # probes: pass exactly when isolation held
    "probe_read_canary": (PROBE, "def probe():\n    try:\n        return open({canary!r}).read()\n"
                          "    except OSError:\n        return None\n", ("passed",), None),
    "probe_read_project_data": (PROBE, "import os\ndef probe():\n    return [p for p in ('/work/shared/data', "
                                "'/work/main/pyproject.toml', '/root/.bash_history', '/home') if os.path.exists(p) "
                                "and os.listdir(p) if os.path.isdir(p)] or None\n", ("passed",), None),
    "probe_env_secret": (PROBE, "import os\ndef probe():\n    return os.environ.get({secret_env!r}) or "
                         "[k for k in os.environ if 'SECRET' in k or 'TOKEN' in k] or None\n", ("passed",), None),
    "probe_network": (PROBE, "import socket\ndef probe():\n    ok = []\n"
                      "    for addr in (('8.8.8.8', 53), ('1.1.1.1', 80), ('127.0.0.1', 22)):\n"
                      "        try:\n            s = socket.create_connection(addr, timeout=0.5)\n"
                      "            ok.append(addr[0])\n        except OSError:\n            pass\n"
                      "    return ok or None\n", ("passed",), None),
    "probe_raise_rlimit": (PROBE, "import resource\ndef probe():\n    try:\n"
                           "        resource.setrlimit(resource.RLIMIT_AS, (-1, -1))\n        return 'raised'\n"
                           "    except (ValueError, OSError):\n        return None\n", ("passed",), None),
    "probe_ctypes_setuid_mount": (PROBE, "import ctypes\ndef probe():\n    libc = ctypes.CDLL(None)\n"
                                  "    got = []\n    if libc.setuid(0) == 0: got.append('setuid')\n"
                                  "    if libc.mount(b'tmpfs', b'/usr', b'tmpfs', 0, None) == 0: got.append('mount')\n"
                                  "    return got or None\n", ("passed",), None),
    "probe_parent_memory": (PROBE, "def probe():\n    got = []\n    for p in ('/proc/1/environ', '/proc/1/mem', "
                            "'/proc/1/maps'):\n        try:\n            open(p, 'rb').read(10)\n"
                            "            got.append(p)\n        except OSError:\n            pass\n"
                            "    return got or None\n", ("passed",), None),
}
