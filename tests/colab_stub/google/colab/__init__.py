"""A stand-in for Colab's ``google.colab`` package, for tests/test_colab_environment.py:
the setup cells decide they are on Colab when ``google.colab`` is imported, as it is in
every Colab kernel."""
