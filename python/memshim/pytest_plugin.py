"""pytest plugin (see README): filled in below."""


def pytest_addoption(parser):
    parser.addoption("--memshim", action="store_true", help="run the session under memshim")
