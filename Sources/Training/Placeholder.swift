// Training module: placeholder until the first file lands.
