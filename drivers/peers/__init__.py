"""Protocol peers (simulated devices) for tests, benches and demos without hardware."""
