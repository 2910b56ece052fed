"""A real JupyterHub for the tests, set up as autograder/JUPYTERHUB.md tells an instructor to.

Its users are system users, created here and removed at the end, who log in through PAM
(JupyterHub's default authenticator); each one's JupyterLab server runs as that user
(LocalProcessSpawner) from the environment the tests run in, as a hub's users share one
environment. The exchange is a folder every user writes into, and the guide's two files are
used as the guide gives them. The tests drive the hub with a service's token, as a course's own
scripts would: they start the servers, read and write a user's files through that user's
server, and type commands into a terminal of it, so that each command runs as the user, in
the environment the hub gave them.

One thing differs from a real hub, and only where it must: where the course's Python lies in a
folder other users may not enter (pyenv's, in a 0700 /root), each server starts in a mount
namespace of its own in which that folder is passable (:func:`passage`).

Creating users and running the hub need root; where the tests are not root, each such command
goes through password-less ``sudo -n``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from shlex import quote

ROOT = Path(__file__).resolve().parents[1]
#: The environment the tests run in: JupyterHub, the users' servers and nbgrader come from it.
ENV_BIN = Path(sys.prefix) / "bin"
PROXY = ENV_BIN / "configurable-http-proxy"
#: Root runs the privileged commands itself; anyone else through password-less sudo.
SUDO: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
#: The guide whose two files (the hub's settings, everyone's nbgrader settings) this hub uses
#: as they are written there, but for the exchange folder: this hub's own replaces the guide's.
GUIDE = ROOT / "autograder" / "JUPYTERHUB.md"
GUIDE_EXCHANGE = "/srv/nbgrader/exchange"
HUB_SETTINGS = "/opt/tljh/config/jupyterhub_config.d/conv2d-course.py"
#: On a real hub in /etc/jupyter; here in a folder the hub names in JUPYTER_CONFIG_PATH, so that
#: this machine's own /etc is left alone.
NBGRADER_SETTINGS = "/etc/jupyter/nbgrader_config.py"
#: The servers' own setting: a terminal's shell keeps the PATH the hub gave the server (a login
#: shell would read Debian's /etc/profile, which sets PATH anew).
SERVERS_CONFIG = """\
c = get_config()  # noqa: F821
c.ServerApp.terminado_settings = {"shell_command": ["/bin/bash"]}
"""


@functools.cache
def hub_problem() -> str | None:
    """Why a JupyterHub of system users cannot run here (None: it can)."""
    if SUDO and (shutil.which("sudo") is None or
                 subprocess.run([*SUDO, "true"], capture_output=True).returncode != 0):
        return ("it needs root (or password-less sudo) to create system users and to run "
                "JupyterHub, which starts each user's server as that user")
    for tool in ("useradd", "userdel", "chpasswd"):
        if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") is None:
            return f"{tool} not found (Debian's passwd package)"
    if not (ENV_BIN / "jupyterhub").exists():
        return f"jupyterhub is not installed in {sys.prefix}: pip install -e '.[dev]'"
    if not PROXY.exists():
        return (f"{PROXY} not found: `make test-packages` installs Debian's nodejs and npm, "
                "then configurable-http-proxy from npm into .venv")
    return None


def closed_folders() -> dict[Path, set[str]]:
    """The folders on the way to the course's environment (this checkout, its .venv and the
    Python it was made from) that other users may not enter, each with the names in it that
    lead there: a Python of pyenv's, under a 0700 /root, is one."""
    import convcourse

    closed: dict[Path, set[str]] = {}
    package = Path(convcourse.__file__).resolve().parent  # an editable install: in ROOT
    for needed in {Path(sys.prefix), Path(sys.base_prefix).resolve(), ROOT, package}:
        for child in (needed, *needed.parents[:-1]):
            if not child.parent.stat().st_mode & stat.S_IXOTH:
                closed.setdefault(child.parent, set()).add(child.name)
    return dict(sorted(closed.items(), key=lambda item: len(item[0].parts)))


#: A user's server starts as root in a mount namespace of its own where each closed folder is
#: replaced by a passable one holding only the way through; it then becomes the user.
PASSAGE_SPAWNER = """
from jupyterhub.spawner import LocalProcessSpawner


class PassageSpawner(LocalProcessSpawner):
    def make_preexec_fn(self, name):
        return None  # the command below becomes the user itself, after its mounts


c.JupyterHub.spawner_class = PassageSpawner
"""


def passage(closed: dict[Path, set[str]], keep: Path) -> list[str]:
    """The command that starts a server in the passage (see PASSAGE_SPAWNER)."""
    script = ["set -e"]
    for n, (folder, names) in enumerate(closed.items()):
        ways = [(folder / name, keep / f"{n}-{m}") for m, name in enumerate(sorted(names))]
        for way, held in ways:
            held.mkdir(parents=True)
            script.append(f"mount --rbind {quote(str(way))} {quote(str(held))}")
        script.append(f"mount -t tmpfs -o mode=0711,size=64k passage {quote(str(folder))}")
        for way, held in ways:
            script += [f"mkdir {quote(str(way))}", f"mount --move {quote(str(held))} "
                       f"{quote(str(way))}"]
    script += ['cd "$HOME"',
               'exec setpriv --reuid="$USER" --regid="$(id -g "$USER")" --init-groups -- "$@"']
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            "\n".join(script), "passage"]


def guide_file(path: str) -> str:
    """The file ``path`` as the guide gives it: the one code block that opens with ``# path``."""
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", GUIDE.read_text(), re.DOTALL | re.MULTILINE)
    found = [block for block in blocks if block.startswith(f"# {path}\n")]
    assert len(found) == 1, f"{GUIDE} gives {path} {len(found)} times, not once"
    return found[0]


def chromium(profile: Path):
    """Headless Chromium that reaches this machine's loopback address and nothing else
    (the book's tests, tests/test_book_browser.py, reach no address at all)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--window-size=1280,1000",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                 "--proxy-server=http://127.0.0.1:9",  # loopback is never proxied
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def privileged(*command: str, input: str | None = None) -> str:
    """Run ``command`` as root; its output. Fails, with what it printed, where it fails."""
    done = subprocess.run([*SUDO, *command], input=input, capture_output=True, text=True,
                          check=False, env={**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert done.returncode == 0, f"{' '.join(command)}: {done.stdout}{done.stderr}"
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


#: What a terminal sends besides text: control sequences, titles, character sets, returns.
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|\r")
#: Printed after each command typed into a terminal: its exit status. Typed as two quoted
#: halves, so the terminal's echo of the command line never looks like it.
EXIT = re.compile(r"__EXIT__(\d+)")
TYPE_EXIT = 'echo "__EX""IT__$?"'


@dataclass
class Hub:
    """A running JupyterHub: ``url``, its users (name -> password) and the folders it uses."""

    folder: Path                    # everything of this hub: homes, exchange, config, state
    users: dict[str, str]
    process: subprocess.Popen | None = None
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def exchange(self) -> Path:
        return self.folder / "exchange"

    @property
    def config(self) -> Path:
        """The folder of the learners' nbgrader_config.py (a hub's /etc/jupyter)."""
        return self.folder / "etc" / "jupyter"

    def home(self, user: str) -> Path:
        return self.folder / "home" / user

    # --- set-up and tear-down -------------------------------------------------------------

    @classmethod
    def start(cls, names: list[str]) -> Hub:
        """System users ``names`` (each with a fresh suffix, so that no account of this
        machine is reused), the exchange and the class's config, and the hub serving them."""
        folder = Path(tempfile.mkdtemp(prefix="convcourse-hub-"))
        folder.chmod(0o755)  # the users reach their homes, the exchange and the config in it
        suffix = secrets.token_hex(3)
        hub = cls(folder, {f"{name}-{suffix}": secrets.token_urlsafe(12) for name in names})
        try:
            hub._set_up()
        except BaseException:
            hub.stop()
            raise
        return hub

    def _set_up(self) -> None:
        (self.folder / "home").mkdir()
        for user in self.users:
            privileged("useradd", "--create-home", "--home-dir", str(self.home(user)),
                       "--shell", "/bin/bash", "--user-group", user)
        privileged("chpasswd", input="".join(f"{u}:{p}\n" for u, p in self.users.items()))
        # nbgrader's exchange: every user writes into it (1777: like /tmp, no one removes
        # another's course); release_assignment checks for rwx for all.
        self.exchange.mkdir()
        self.exchange.chmod(0o1777)
        self.config.mkdir(parents=True)
        (self.config / Path(NBGRADER_SETTINGS).name).write_text(guide_file(NBGRADER_SETTINGS))
        (self.config / "jupyter_server_config.py").write_text(SERVERS_CONFIG)
        state = self.folder / "state"
        state.mkdir(mode=0o700)
        (state / "jupyterhub_config.py").write_text(self._hub_config(state))
        log = (state / "hub.log").open("wb")
        self.process = subprocess.Popen(
            [*SUDO, str(ENV_BIN / "jupyterhub"), "-f", str(state / "jupyterhub_config.py")],
            cwd=state, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PATH": f"{ENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin"})
        self._wait(self._answers, 60, "the hub to answer")

    def _hub_config(self, state: Path) -> str:
        closed = closed_folders()
        path = f"{ENV_BIN}:/usr/local/bin:/usr/bin:/bin"
        settings = {
            "JupyterHub.bind_url": self.url,
            "JupyterHub.hub_bind_url": f"http://127.0.0.1:{free_port()}",
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{free_port()}",
            "ConfigurableHTTPProxy.command": [str(PROXY)],
            "JupyterHub.db_url": f"sqlite:///{state / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(state / "cookie_secret"),
            "JupyterHub.pid_file": str(state / "hub.pid"),
            "Authenticator.allowed_users": set(self.users),
            # A request to start a server answers at once, so that servers start together.
            "JupyterHub.tornado_settings": {"slow_spawn_timeout": 0},
            # The test's scripts: start servers, and use them as their users.
            "JupyterHub.services": [{"name": "course-test", "api_token": self.token}],
            "JupyterHub.load_roles": [{"name": "course-test", "services": ["course-test"],
                                       "scopes": ["admin:users", "admin:servers",
                                                  "access:servers"]}],
            # Every user's server: JupyterLab from the course's environment, which holds
            # nbgrader and convcourse, and the class's nbgrader settings.
            "Spawner.cmd": [*(passage(closed, state / "keep") if closed else []),
                            str(ENV_BIN / "jupyterhub-singleuser")],
            "Spawner.default_url": "/lab",
            "Spawner.environment": {"PATH": path, "JUPYTER_CONFIG_PATH": str(self.config)},
            "Spawner.http_timeout": 90,
            # Stopping: a server asks for 5 s whether to stop on SIGINT; SIGTERM at once.
            "LocalProcessSpawner.interrupt_timeout": 0,
            "Spawner.start_timeout": 120,
        }
        lines = ["c = get_config()  # noqa: F821"]
        lines += [f"c.{name} = {value!r}" for name, value in settings.items()]
        lines.append(guide_file(HUB_SETTINGS).replace(GUIDE_EXCHANGE, str(self.exchange)))
        return "\n".join(lines) + "\n" + (PASSAGE_SPAWNER if closed else "")

    def log(self) -> str:
        path = self.folder / "state" / "hub.log"
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def stop(self) -> None:
        """Stop the hub (which stops the users' servers), then remove the users, their
        homes and the folder; every step is tried, and what failed is said at the end."""
        failed = []
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # sudo, where used, passes it on
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                subprocess.run([*SUDO, "kill", "-KILL", "--", f"-{self.process.pid}"])
                self.process.wait(10)
        for user in self.users:
            try:
                self._remove_user(user)
            except AssertionError as error:
                failed.append(str(error))
        try:
            privileged("rm", "-rf", "--one-file-system", str(self.folder))
        except AssertionError as error:
            failed.append(str(error))
        assert not failed, "the hub's clean-up failed: " + "; ".join(failed)

    @staticmethod
    def _remove_user(user: str) -> None:
        """End what ``user``'s processes the hub left (their ids, ended by id), then remove
        the user and their home."""
        import pwd

        try:
            uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            return  # never made
        deadline = time.monotonic() + 10
        while pids := [p.name for p in Path("/proc").iterdir()
                       if p.name.isdigit() and _owner(p) == uid]:
            assert time.monotonic() < deadline, f"{user}'s processes {pids} do not end"
            subprocess.run([*SUDO, "kill", "-KILL", *pids], capture_output=True)
            time.sleep(0.1)
        privileged("userdel", "--remove", user)

    # --- the REST APIs ----------------------------------------------------------------------

    def request(self, method: str, path: str, body=None, timeout: float = 60):
        """``method`` on the hub's ``path`` (below its URL) with the service's token: the
        answer's JSON (None where the answer has no body)."""
        import requests

        answer = requests.request(method, f"{self.url}/{path}", json=body, timeout=timeout,
                                  headers={"Authorization": f"token {self.token}"})
        assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text[:2000]}"
        return answer.json() if answer.content else None

    def api(self, method: str, path: str, body=None):
        """The hub's own REST API: ``hub/api/PATH``."""
        return self.request(method, f"hub/api/{path}", body)

    def _answers(self) -> bool:
        import requests

        try:
            return requests.get(f"{self.url}/hub/api", timeout=5).ok
        except requests.ConnectionError:
            return False

    def spawn(self, *users: str) -> None:
        """Start the users' servers (at the same time), and wait until each one answers."""
        for user in users:
            self.request("POST", f"hub/api/users/{user}/server")

        def ready() -> bool:
            return all(self.api("GET", f"users/{u}")["servers"].get("", {}).get("ready")
                       for u in users)
        self._wait(ready, 120, f"the servers of {', '.join(users)}")

    def contents(self, user: str, path: str, model: dict | None = None) -> dict:
        """A file of ``user``'s, through their server (written where ``model`` is given)."""
        where = f"user/{user}/api/contents/{path}"
        return self.request("PUT", where, model) if model else self.request("GET", where)

    def terminal(self, user: str, command: str, timeout: float = 120) -> tuple[int, str]:
        """Type ``command`` into a new terminal of ``user``'s server, as the user would:
        its exit status and what the terminal showed."""
        import websocket

        name = self.request("POST", f"user/{user}/api/terminals")["name"]
        socket_url = f"ws://127.0.0.1:{self.port}/user/{user}/terminals/websocket/{name}"
        connection = websocket.create_connection(
            socket_url, header=[f"Authorization: token {self.token}"], timeout=timeout)
        shown, deadline = "", time.monotonic() + timeout
        try:
            connection.send(json.dumps(["set_size", 50, 200]))
            connection.send(json.dumps(["stdin", f"{command}; {TYPE_EXIT}\r"]))
            while not (done := EXIT.search(shown)):
                connection.settimeout(max(0.1, deadline - time.monotonic()))
                try:
                    message = json.loads(connection.recv())
                except websocket.WebSocketTimeoutException:
                    raise AssertionError(f"{user}$ {command}: no end after {timeout} s:\n"
                                         f"{shown[-4000:]}") from None
                if message[0] == "stdout":
                    shown += ANSI.sub("", message[1])
        finally:
            connection.close()
            self.request("DELETE", f"user/{user}/api/terminals/{name}")
        return int(done.group(1)), shown[:done.start()]

    def _wait(self, condition, seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            assert self.process.poll() is None, f"the hub stopped:\n{self.log()}"
            assert time.monotonic() < deadline, f"waited {seconds} s for {what}:\n{self.log()}"
            time.sleep(0.25)


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None  # the process ended meanwhile
