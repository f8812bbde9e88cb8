"""Pure order domain: entities, rules, commands, events and errors. No I/O imports."""
