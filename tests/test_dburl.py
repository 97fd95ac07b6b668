"""Database URLs and libpq key=value strings: parsed, masked, and never shown with their
password, also when they cannot be parsed."""

from __future__ import annotations

import pytest

from bookrec.dburl import mask_url, parse_conninfo, parse_database_url
from bookrec.errors import InputError, scrub
from tests.conftest import Cli

SECRET = "s3cretPW"


def test_keyword_strings_are_postgresql_connections():
    url = parse_database_url(f"host=127.0.0.1 port=6543 password={SECRET} dbname=x")
    assert (url.backend, url.host, url.port, url.database) == ("postgresql", "127.0.0.1", 6543, "x")
    assert SECRET not in url.masked and "password=***" in url.masked
    assert url.where == "postgresql database 'x' on 127.0.0.1:6543"
    assert scrub(f"oops {SECRET}") == "oops ***"


def test_quoted_keyword_values_by_libpq_rules():
    text = r"host = db1  password='s3 cr\'et\\PW'  user=me dbname='my db'"
    pairs = [(k, v) for k, v, _ in parse_conninfo(text)]
    assert pairs == [("host", "db1"), ("password", "s3 cr'et\\PW"), ("user", "me"),
                     ("dbname", "my db")]  # fmt: skip
    assert mask_url(text) == "host = db1  password=***  user=me dbname='my db'"
    assert parse_database_url(text).database == "my db"
    assert scrub("s3 cr'et\\PW") == "***"


@pytest.mark.parametrize(
    "text",
    [
        f"host=127.0.0.1 password={SECRET} junk",  # a word without '='
        f"host=127.0.0.1 password='{SECRET}",  # no closing quote
        f"host=127.0.0.1 password={SECRET[:4]} {SECRET[4:]} dbname=x",  # unquoted space
    ],
)
def test_unparseable_keyword_strings_never_show_the_password(text):
    with pytest.raises(InputError) as caught:
        parse_database_url(text)
    assert SECRET not in caught.value.message and SECRET[4:] not in caught.value.message
    assert "keyword" in caught.value.message
    assert SECRET not in mask_url(text)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"postgresql://u:{SECRET}@[::1/db", "cannot be parsed"),
        (f"postgresql://u:{SECRET}@host:notaport/db", "bad port"),
        (f"mysql://u:{SECRET}@host/db", "unsupported scheme 'mysql'"),
        (SECRET, "(not shown): neither a URL nor key=value"),
    ],
)
def test_bad_urls_never_show_the_password(url, problem):
    with pytest.raises(InputError) as caught:
        parse_database_url(url)
    assert problem in caught.value.message and SECRET not in caught.value.message


def test_url_passwords_in_the_user_part_or_the_query_are_masked():
    assert mask_url(f"postgresql://me:{SECRET}@h:5/db") == "postgresql://me:***@h:5/db"
    masked = mask_url(f"postgresql://me@h/db?sslmode=require&password={SECRET}")
    assert masked == "postgresql://me@h/db?sslmode=require&password=***"
    parse_database_url(f"postgresql://me@h/db?password={SECRET}q")
    assert scrub(f"{SECRET}q") == "***"


def test_the_cli_never_prints_a_keyword_password(tmp_path):
    text = f"host=127.0.0.1 port=1 connect_timeout=2 password={SECRET} dbname=x"
    result = Cli(text)("status")
    assert result.exit_code == 1 and "cannot connect to postgresql database 'x'" in result.stderr
    assert SECRET not in result.stdout + result.stderr
    result = Cli(f"host=127.0.0.1 password={SECRET} junk")("status")
    assert result.exit_code == 2 and SECRET not in result.stdout + result.stderr
    result = Cli(f"host=127.0.0.1 password={SECRET} dbname=x")("config")
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.postgres
def test_a_keyword_string_reaches_postgresql(postgres_server, tmp_path):
    from urllib.parse import urlsplit

    parts = urlsplit(postgres_server)
    keywords = (
        f"host={parts.hostname} port={parts.port or 5432} user={parts.username}"
        f" dbname={parts.path.lstrip('/')}"
    )
    cli = Cli(keywords)
    cli.ok("db", "init")
    result = cli.ok("status", "--json")
    assert '"backend": "postgresql"' in result.stdout
