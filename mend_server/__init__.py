"""The Mend gRPC server: servicers, auth, health, reflection (and the REST gateway)."""
