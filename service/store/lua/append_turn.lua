-- ARGV[2..4]: fingerprint, turn, turn_ms.
return append_turn(ARGV[2], ARGV[3], ARGV[4])
