from dcsim.cli import entry_point

entry_point()
