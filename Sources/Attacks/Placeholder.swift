// Attacks module: placeholder until the first attack lands.
