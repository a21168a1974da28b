-- GET the paths listed in the file named by the first script argument, one after the other.
local paths = {}
local index = 0

function init(args)
  for line in io.lines(args[1]) do
    table.insert(paths, line)
  end
end

request = function()
  index = index % #paths + 1
  return wrk.format("GET", paths[index])
end
