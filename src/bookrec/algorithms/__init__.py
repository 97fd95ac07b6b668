"""Pure numpy/scipy algorithms: no database, no printing."""
