Console.WriteLine("Condense sample: not written yet.");
