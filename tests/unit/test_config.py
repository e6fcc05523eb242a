"""The config reader: what a valid file becomes, and how every mistake is reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from deskphone.config import (
    DEFAULT_CONFIG_PATH,
    AccountConfig,
    Config,
    Secret,
    SipServer,
    default_config,
    describe_schema,
    load_config,
    parse_config,
)
from deskphone.core.dialplan import DialPlan, DigitMap, Match
from deskphone.errors import ConfigError, ConfigProblem

PASSWORD = "s3cret-Pa55"

# Every section and key, none at its default.
FULL = """\
[phone]
name = "Front desk"
country = "DE"
log_level = "debug"
state_dir = "state"
sip_port = 0
bind_address = "127.0.0.1"
ended_display_seconds = 5

[[account]]
registrar = "sip:pbx.example.com:5070"
user = "101"
auth_user = "auth101"
password = "s3cret-Pa55"
display_name = "Reception"
label = "Office"
transport = "tcp"
outbound_proxy = "proxy.example.com"
expiry = 600
register_retry_min = 1.5
register_retry_max = 60
dtmf = "sip-info"
enabled = false

[[account]]  # the password comes from a file
registrar = "sips:[2001:db8::1]"
user = "alice"
password_file = "alice.secret"
transport = "tls"

[audio]
codecs = ["pcmu", "G722", "ilbc"]
backend = "null"
microphone_file = "/srv/mic.wav"
recordings_dir = "recordings"

[dialplan]
digit_map = "[2-9]xxx|0x.|112"
inter_digit_timeout = 2.5
emergency_numbers = ["112", "999"]

[hardware]
kit = "sim"
profile = "hardware/custom.toml"

[display]
driver = "sh1106"
interface = "spi"
i2c_address = 0x3D
i2c_bus = 3
rotate = 2
contrast = 128
dim_after = 0

[power]
source = "sim"
low_percent = 30
critical_percent = 10
"""


def problems_of(text: str, base_dir: Path | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), "test.toml", base_dir)
    assert caught.value.source == "test.toml"
    return caught.value.problems


def only_problem(text: str, base_dir: Path | None = None) -> ConfigProblem:
    found = problems_of(text, base_dir)
    assert len(found) == 1, found
    return found[0]


def test_full_file_gives_every_value(tmp_path: Path) -> None:
    (tmp_path / "alice.secret").write_text("alice-pw \nsecond line is ignored\n")
    config = parse_config(FULL, "deskphone.toml", base_dir=tmp_path)

    assert config.source == "deskphone.toml"
    assert config.phone.name == "Front desk"
    assert config.phone.country == "DE"
    assert config.phone.log_level == "debug"
    assert config.phone.state_dir == tmp_path / "state"
    assert (config.phone.sip_port, config.phone.bind_address) == (0, "127.0.0.1")
    assert config.phone.ended_display_seconds == 5.0
    assert isinstance(config.phone.ended_display_seconds, float)

    office, alice = config.accounts
    assert office == AccountConfig(
        registrar=SipServer("pbx.example.com", 5070),
        user="101",
        auth_user="auth101",
        password=Secret(PASSWORD),
        display_name="Reception",
        label="Office",
        transport="tcp",
        outbound_proxy=SipServer("proxy.example.com"),
        expiry=600,
        register_retry_min=1.5,
        register_retry_max=60.0,
        dtmf="sip-info",
        enabled=False,
    )
    assert alice.registrar == SipServer("2001:db8::1", None, "sips")
    assert (office.registrar_scheme, office.registrar_host, office.registrar_port) == (
        "sip",
        "pbx.example.com",
        5070,
    )
    assert alice.password is not None and alice.password.reveal() == "alice-pw"
    assert alice.password_file == tmp_path / "alice.secret"
    assert (alice.auth_user, alice.label, alice.expiry) == ("alice", "alice", 300)
    assert config.default_account is alice  # the first one is disabled

    assert config.audio.codecs == ("PCMU", "G722", "iLBC")
    assert config.audio.backend == "null"
    assert config.audio.microphone_file == Path("/srv/mic.wav")
    assert config.audio.recordings_dir == tmp_path / "recordings"

    assert config.dialplan.digit_map == DigitMap("[2-9]xxx|0x.|112")
    assert config.dialplan.inter_digit_timeout == 2.5
    assert config.dialplan.emergency_numbers == ("112", "999")

    assert (config.hardware.kit, config.hardware.profile) == ("sim", "hardware/custom.toml")
    display = config.display
    assert (display.driver, display.interface, display.i2c_address) == ("sh1106", "spi", 0x3D)
    assert (display.i2c_bus, display.rotate, display.contrast, display.dim_after) == (3, 2, 128, 0)
    power = config.power
    assert (power.source, power.low_percent, power.critical_percent) == ("sim", 30, 10)


def test_the_same_file_reads_the_same_twice(tmp_path: Path) -> None:
    (tmp_path / "alice.secret").write_text("alice-pw\n")
    assert parse_config(FULL, base_dir=tmp_path) == parse_config(FULL, base_dir=tmp_path)


def test_an_empty_file_is_the_default_config() -> None:
    assert parse_config("# nothing set\n") == Config(source="<string>")
    assert default_config() == Config()
    assert default_config().source == "<defaults>"
    assert default_config().accounts == ()
    assert default_config().default_account is None


def test_defaults_written_out_read_back_as_defaults() -> None:
    text = """\
    [phone]
    name = "deskphone"
    country = "US"
    state_dir = "/var/lib/deskphone"
    [audio]
    codecs = ["G722", "PCMA", "PCMU"]
    [dialplan]
    digit_map = "[0-9*][0-9*]."
    emergency_numbers = ["112", "911"]
    [display]
    i2c_address = 0x3C
    dim_after = 30
    """
    config = parse_config(textwrap.dedent(text))
    assert config == Config(source="<string>")


def test_load_config_resolves_paths_against_the_files_directory(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORD)
    path = tmp_path / "deskphone.toml"
    path.write_text('[[account]]\nregistrar = "pbx"\nuser = "bob"\npassword_file = "pw"\n')
    config = load_config(path)
    assert config.source == str(path)
    assert config.accounts[0].password == Secret(PASSWORD)


def test_the_default_path() -> None:
    assert Path("/etc/deskphone/deskphone.toml") == DEFAULT_CONFIG_PATH


def test_to_dialplan_gives_the_core_a_ready_plan() -> None:
    text = (
        '[dialplan]\ndigit_map = "[2-9]xxx"\ninter_digit_timeout = 3\nemergency_numbers = ["999"]'
    )
    plan = parse_config(text).dialplan.to_dialplan()
    assert plan == DialPlan(DigitMap("[2-9]xxx"), ("999",), 3.0)
    assert plan.match("999") is Match.FULL_EXTENDABLE
    assert plan.is_emergency("999")


@pytest.mark.parametrize(
    ("written", "stored"),
    [("us", "US"), ("DE", "DE"), ("gb", "UK")],
)
def test_country_is_stored_as_the_tone_plan_names_it(written: str, stored: str) -> None:
    assert parse_config(f'[phone]\ncountry = "{written}"').phone.country == stored


# (the file, the key of the problem, its line, words the message must contain)
ACCOUNT = '[[account]]\nregistrar = "pbx.example.com"\nuser = "bob"\n'
PROBLEMS = [
    # Unknown keys and sections, with a suggestion when one is close.
    (
        ACCOUNT + "expiri = 60\n",
        "account[0].expiri",
        4,
        "unknown key 'expiri' (did you mean 'expiry'?)",
    ),
    ("[phone]\nname = 'x'\n\n[acount]\nuser = 'x'\n", "acount", 4, "did you mean 'account'?"),
    ("[phone]\nflavour = 'x'\n", "phone.flavour", 2, "unknown key 'flavour'"),
    ("volume = 3\n", "volume", 1, "unknown section 'volume'"),
    ("[phone.extra]\nname = 'x'\n", "phone.extra", 1, "unknown key 'extra'"),
    # Wrong types say what was expected.
    ('[display]\nrotate = "1"\n', "display.rotate", 2, "expected an integer, got a string"),
    ("[display]\ncontrast = true\n", "display.contrast", 2, "expected an integer, got a boolean"),
    (ACCOUNT + "expiry = 300.5\n", "account[0].expiry", 4, "expected an integer, got a float"),
    (ACCOUNT + "enabled = 1\n", "account[0].enabled", 4, "expected a boolean"),
    ("[phone]\nname = 7\n", "phone.name", 2, "expected a string, got an integer"),
    ('[audio]\ncodecs = "G722"\n', "audio.codecs", 2, "expected an array, got a string"),
    ("[audio]\ncodecs = ['G722', 9]\n", "audio.codecs[1]", 2, "expected a string"),
    ("phone = 3\n", "phone", 1, "expected a table [phone], got an integer"),
    ("[phone]\nended_display_seconds = inf\n", "phone.ended_display_seconds", 2, "finite"),
    # Limits are stated.
    (ACCOUNT + "expiry = 5\n", "account[0].expiry", 4, "must be 10 to 86400, not 5"),
    (ACCOUNT + "register_retry_min = 0.1\n", "account[0].register_retry_min", 4, "0.5 to 600"),
    ("[display]\ni2c_address = 0x78\n", "display.i2c_address", 2, "0x03 to 0x77, not 0x78"),
    ("[power]\nlow_percent = 0\n", "power.low_percent", 2, "must be 1 to 100, not 0"),
    (f'[phone]\nname = "{"n" * 65}"\n', "phone.name", 2, "must have 1 to 64 characters, not 65"),
    ('[phone]\nname = ""\n', "phone.name", 2, "must not be empty"),
    ("[audio]\ncodecs = []\n", "audio.codecs", 2, "must not be empty"),
    ("[dialplan]\nemergency_numbers = []\n", "dialplan.emergency_numbers", 2, "must not be empty"),
    # Choices, case-insensitively, with a suggestion.
    (ACCOUNT + 'transport = "udpp"\n', "account[0].transport", 4, "did you mean 'udp'?"),
    ('[phone]\nlog_level = "verbose"\n', "phone.log_level", 2, "must be one of 'debug', "),
    ("[audio]\ncodecs = [\n  'G722',\n  'opus',\n]\n", "audio.codecs[1]", 4, "not 'opus'"),
    (
        "[audio]\ncodecs = ['PCMA', 'G722', 'pcma']\n",
        "audio.codecs[2]",
        2,
        '"PCMA" is listed twice',
    ),
    ('[phone]\ncountry = "XX"\n', "phone.country", 2, "no call-progress tone plan"),
    ('[phone]\ncountry = "USA"\n', "phone.country", 2, "not a two-letter country code"),
    ('[phone]\nbind_address = "localhost"\n', "phone.bind_address", 2, "not an IP address"),
    ("[phone]\nsip_port = 65536\n", "phone.sip_port", 2, "must be 0 to 65535, not 65536"),
    # Required keys, reported at the table that lacks them.
    ('\n[[account]]\nuser = "bob"\n', "account[0].registrar", 2, "required"),
    ('[[account]]\nregistrar = "pbx"\n', "account[0].user", 1, "required"),
    # Passwords.
    (
        ACCOUNT + 'password = "x"\npassword_file = "/pw"\n',
        "account[0].password_file",
        5,
        "not both",
    ),
    (ACCOUNT + 'password_file = "/nonexistent/pw"\n', "account[0].password_file", 4, "cannot read"),
    (ACCOUNT + 'password = ""\n', "account[0].password", 4, "must not be empty"),
    # Addresses.
    ('[[account]]\nregistrar = "sip:"\nuser = "b"\n', "account[0].registrar", 2, "host is empty"),
    ('[[account]]\nregistrar = "pbx:0"\nuser = "b"\n', "account[0].registrar", 2, "port '0'"),
    ('[[account]]\nregistrar = "pbx:65536"\nuser = "b"\n', "account[0].registrar", 2, "1 to 65535"),
    ('[[account]]\nregistrar = "pbx:http"\nuser = "b"\n', "account[0].registrar", 2, "port"),
    ('[[account]]\nregistrar = "sip:bob@pbx"\nuser = "b"\n', "account[0].registrar", 2, "user"),
    ('[[account]]\nregistrar = "pb x"\nuser = "b"\n', "account[0].registrar", 2, "not a host"),
    ('[[account]]\nregistrar = "[::1"\nuser = "b"\n', "account[0].registrar", 2, "IPv6"),
    (
        '[[account]]\nregistrar = "pbx;transport=tcp"\nuser = "b"\n',
        "account[0].registrar",
        2,
        "transport",
    ),
    (ACCOUNT + 'outbound_proxy = "sip:"\n', "account[0].outbound_proxy", 4, "host is empty"),
    ('[[account]]\nregistrar = "pbx"\nuser = "bob@pbx"\n', "account[0].user", 3, "'@'"),
    # Rules across keys.
    (
        ACCOUNT + "register_retry_min = 30\nregister_retry_max = 20\n",
        "account[0].register_retry_min",
        4,
        "exceeds",
    ),
    ('[[account]]\nregistrar = "sips:pbx"\nuser = "b"\n', "account[0].transport", 1, "tls"),
    ("[power]\nlow_percent = 10\ncritical_percent = 10\n", "power.critical_percent", 3, "below"),
    (
        ACCOUNT + "\n" + ACCOUNT.replace("pbx.example.com", "PBX.example.com"),
        "account[1]",
        5,
        "same user and registrar",
    ),
    ("[account]\nuser = 'x'\n", "account", 1, "write [[account]], not [account]"),
    ("account = [1]\n", "account[0]", 1, "expected a table"),
    # Digit maps name the position.
    ('[dialplan]\ndigit_map = "12[3"\n', "dialplan.digit_map", 2, "position 3: unbalanced '['"),
    (
        '[dialplan]\nemergency_numbers = ["112", "11a"]\n',
        "dialplan.emergency_numbers[1]",
        2,
        "digits",
    ),
    # Where the locator must look past strings, comments and arrays.
    ('[phone]\nname = """\n[fake]\nx"""\nwat = 1\n', "phone.wat", 5, "unknown key"),
    ("[phone]\nname = '''\n[[account]]'''\nwat = 1\n", "phone.wat", 4, "unknown key"),
    ("[audio] # [phone]\ncodecs = ['G722', # ]\n 'x']\n", "audio.codecs[1]", 3, "'x'"),
    ('phone = { name = "ok", rotate = 1 }\n', "phone.rotate", 1, "unknown key"),
    ("phone.name = 5\n", "phone.name", 1, "expected a string"),
    (
        (
            "account = [\n  {registrar = 'pbx', user = 'a'},\n"
            "  {registrar = 'pbx', user = 'b', x = 1},\n]\n"
        ),
        "account[1].x",
        3,
        "unknown key",
    ),
    (
        "[[account]]\nregistrar = 'pbx'\nuser = 'a'\n[account.sip]\nx = 1\n",
        "account[0].sip",
        4,
        "unknown key 'sip'",
    ),
]


@pytest.mark.parametrize(("text", "key", "line", "words"), PROBLEMS)
def test_each_problem_names_its_key_and_line(text: str, key: str, line: int, words: str) -> None:
    problem = only_problem(text)
    assert (problem.key, problem.line) == (key, line), problem
    assert words in problem.message


def test_too_many_accounts_is_reported_at_the_first_too_many() -> None:
    text = "".join(f'[[account]]\nregistrar = "pbx"\nuser = "u{i}"\n' for i in range(9))
    problem = only_problem(text)
    assert (problem.key, problem.line) == ("account[8]", 25)
    assert "at most 8" in problem.message


def test_an_empty_password_file_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("\n")
    problem = only_problem(ACCOUNT + 'password_file = "pw"\n', base_dir=tmp_path)
    assert (problem.key, problem.line) == ("account[0].password_file", 4)
    assert "is empty" in problem.message


def test_every_problem_in_a_file_is_reported_in_line_order() -> None:
    text = """\
    [phone]
    log_level = "loud"

    [[account]]
    registrar = "pbx"
    expiry = "long"

    [display]
    rotate = 4
    shape = "round"
    [powr]
    """
    found = [(p.key, p.line) for p in problems_of(text)]
    assert found == [
        ("phone.log_level", 2),
        ("account[0].user", 4),
        ("account[0].expiry", 6),
        ("display.rotate", 9),
        ("display.shape", 10),
        ("powr", 11),
    ]


def test_the_error_text_lists_every_problem_with_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("[phone]\nname = 1\n[display]\nrotate = 9\n", "/etc/deskphone/deskphone.toml")
    text = str(caught.value)
    assert "/etc/deskphone/deskphone.toml: line 2: phone.name: expected a string" in text
    assert "/etc/deskphone/deskphone.toml: line 4: display.rotate: must be 0 to 3, not 9" in text


def test_a_password_never_reaches_repr_str_or_errors(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("file-pw-123\n")
    text = ACCOUNT + f'password = "{PASSWORD}"\n[[account]]\nregistrar = "b"\nuser = "c"\n'
    text += 'password_file = "pw"\n'
    config = parse_config(text, base_dir=tmp_path)
    for shown in (repr(config), str(config), f"{config.accounts}", describe_schema()):
        assert PASSWORD not in shown
        assert "file-pw-123" not in shown
    assert "password=********" in repr(config)

    with pytest.raises(ConfigError) as caught:
        parse_config(text + "expiry = 1\n", base_dir=tmp_path)
    assert PASSWORD not in str(caught.value)

    wrong_type = only_problem(ACCOUNT + "password = 918273645\n")
    assert wrong_type.key == "account[0].password"
    assert "918273645" not in str(wrong_type)


def test_secret_hides_its_value_everywhere_but_reveal() -> None:
    secret = Secret(PASSWORD)
    assert repr(secret) == str(secret) == f"{secret}" == f"{secret:>20}" == format(secret, "")
    assert repr(secret) == "********"
    assert secret.reveal() == PASSWORD
    assert secret == Secret(PASSWORD) != Secret("other")
    assert len({secret, Secret(PASSWORD)}) == 1


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[phone]\nname = \n", 2, "Invalid value"),
        ("[phone]\nname = 'x'\n[phone]\n", 3, ""),
        ('[phone]\nname = "unterminated\n', 2, ""),
        ("[phone", 1, ""),
    ],
)
def test_a_toml_syntax_error_gives_its_line(text: str, line: int, words: str) -> None:
    problem = only_problem(text)
    assert problem.line == line
    assert problem.message.startswith("TOML syntax error: ")
    assert words in problem.message


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file") as caught:
        load_config(tmp_path / "absent.toml")
    assert caught.value.source == str(tmp_path / "absent.toml")


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[phone]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="UTF-8") as caught:
        load_config(path)
    assert caught.value.problems[0].line == 2


def test_a_bom_and_windows_line_ends_are_read_like_any_file(tmp_path: Path) -> None:
    path = tmp_path / "windows.toml"
    path.write_bytes(b'\xef\xbb\xbf[phone]\r\nname = "x"\r\nbad = 1\r\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [ConfigProblem("phone.bad", "unknown key 'bad'", 3)]


@pytest.mark.parametrize(
    ("text", "server", "uri"),
    [
        ("pbx.example.com", SipServer("pbx.example.com"), "sip:pbx.example.com"),
        ("sip:pbx:5062", SipServer("pbx", 5062), "sip:pbx:5062"),
        ("SIPS:pbx", SipServer("pbx", None, "sips"), "sips:pbx"),
        ("10.0.0.1:5060", SipServer("10.0.0.1", 5060), "sip:10.0.0.1:5060"),
        ("sip:[::1]:5080", SipServer("::1", 5080), "sip:[::1]:5080"),
        (" [2001:db8::1] ", SipServer("2001:db8::1"), "sip:[2001:db8::1]"),
    ],
)
def test_sip_server_addresses(text: str, server: SipServer, uri: str) -> None:
    assert SipServer.parse(text) == server
    assert str(server) == server.uri == uri
    assert SipServer.parse(uri) == server


def test_account_defaults_follow_the_user() -> None:
    account = AccountConfig(registrar=SipServer("pbx"), user="bob")
    assert (account.auth_user, account.label, account.password) == ("bob", "bob", None)
    assert account.address == "bob@pbx"


def test_describe_schema_documents_every_section_and_key() -> None:
    text = describe_schema()
    for header in ("[phone]", "[[account]]", "[audio]", "[dialplan]", "[hardware]", "[display]"):
        assert f"\n{header}  " in text
    assert "  registrar  (required)\n" in text
    assert "  expiry = 300\n      integer, 10 to 86400: " in text
    assert "  i2c_address = 0x3C\n" in text
    assert "  auth_user  (default: same as user)\n" in text
    assert "one of udp, tcp, tls" in text
    assert all(len(line) <= 100 for line in text.splitlines())
