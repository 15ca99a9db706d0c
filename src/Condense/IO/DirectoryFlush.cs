using System.Runtime.InteropServices;

namespace Condense.IO;

/// <summary>
/// Flushes a directory's entries to disk (fsync of the directory), so a rename into it survives a power loss.
/// .NET cannot open a directory as a file, hence the two libc calls; a no-op on Windows, where a rename is made
/// durable by the file system.
/// </summary>
internal static partial class DirectoryFlush
{
    /// <summary>Returns true when the directory was flushed, false when the platform or file system does not support it.</summary>
    public static bool Flush(string directory)
    {
        if (!(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD()))
            return false;
        int fd = Open(directory, 0 /* O_RDONLY */);
        if (fd < 0)
            return false;      // e.g. no read permission on the directory: the rename itself already happened
        try
        {
            if (Fsync(fd) == 0)
                return true;
            int errno = Marshal.GetLastPInvokeError();
            // EIO (5) means the data may be lost: say so. Others (EINVAL, EROFS, ENOTSUP...) mean the file system
            // does not sync directories, which is not an error of the save.
            if (errno == 5)
                throw new IOException($"Flushing directory '{directory}' to disk failed (EIO); the saved file may not survive a power loss.");
            return false;
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);
}
