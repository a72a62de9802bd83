pytest_plugins = ["conftest_client"]
