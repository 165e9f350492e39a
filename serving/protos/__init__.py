"""Protocol buffer definitions of the service, with the generated Python code committed beside them."""
